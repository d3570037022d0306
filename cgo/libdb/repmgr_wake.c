//go:build bdb

/*
 * repmgr_wake.c: libdb's replication-lockout sleeps end when the lockout
 * does.
 *
 * A thread that enters libdb while a role change (election won, master
 * lost, sync-up) holds the replication lockout is parked by a fixed sleep:
 * DB_ENV->txn_begin 5 s per check (__op_rep_enter), a DB->get outside a
 * transaction 5 s and then DB_LOCK_DEADLOCK (__db_rep_enter), every other
 * replication-aware API 1 s per check (__env_rep_enter), whatever the
 * lockout's own length (a few milliseconds at a promotion). A promotion
 * whose role goroutine met the lockout waited those 5 s.
 *
 * db_env_set_func_yield replaces libdb's __os_yield for the whole process.
 * dbgo_yield keeps every sleep's length but, for a sleep of a second or
 * more, checks every DBGO_WAKE_SLICE_US whether a replication event
 * (dbgo_rep_wake, called by dbgo_rep_notify) happened since the sleep
 * began, and then returns at once. libdb fires DB_EVENT_REP_MASTER and
 * _CLIENT when the lockout of a role change is over. Every caller of a
 * long __os_yield in libdb 5.3 re-checks its condition in a loop (the
 * lockouts, file and region open retries, a full cache) or, for
 * __db_rep_enter, returns DB_LOCK_DEADLOCK for the caller to retry, so
 * waking early changes no outcome. Sleeps under a second (mutex backoff,
 * election waits) and yields without a pause are as libdb's own.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "repmgrgo.h"

#define DBGO_WAKE_SLICE_US 2000

static atomic_ulong dbgo_rep_gen;
static pthread_once_t dbgo_yield_once = PTHREAD_ONCE_INIT;

void dbgo_rep_wake(void) { atomic_fetch_add(&dbgo_rep_gen, 1); }

static void dbgo_pause(u_long usecs) {
	struct timespec ts;
	ts.tv_sec = (time_t)(usecs / 1000000);
	ts.tv_nsec = (long)(usecs % 1000000) * 1000;
	while (nanosleep(&ts, &ts) != 0)
		;
}

static int dbgo_yield(u_long secs, u_long usecs) {
	struct timespec now;
	unsigned long gen;
	long long left;
	if (secs == 0 && usecs == 0) {
		sched_yield();
		return 0;
	}
	if (secs == 0) {
		dbgo_pause(usecs);
		return 0;
	}
	gen = atomic_load(&dbgo_rep_gen);
	clock_gettime(CLOCK_MONOTONIC, &now);
	left = (long long)secs * 1000000 + (long long)usecs;
	long long end = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000 + left;
	for (;;) {
		dbgo_pause(left < DBGO_WAKE_SLICE_US ? (u_long)left : DBGO_WAKE_SLICE_US);
		if (atomic_load(&dbgo_rep_gen) != gen)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = end - ((long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
		if (left <= 0)
			return 0;
	}
}

static void dbgo_yield_set(void) { db_env_set_func_yield(dbgo_yield); }

void dbgo_yield_install(void) { pthread_once(&dbgo_yield_once, dbgo_yield_set); }

/* dbgo_rep_drop is the transport of dbgo_rep_start_alone: every message is
 * dropped. */
static int dbgo_rep_drop(DB_ENV *env, const DBT *control, const DBT *rec, const DB_LSN *lsn, int eid, u_int32_t flags) {
	(void)env;
	(void)control;
	(void)rec;
	(void)lsn;
	(void)eid;
	(void)flags;
	return 0;
}

int dbgo_rep_start_alone(DB_ENV *env, int master) {
	int rc;
	if ((rc = env->rep_set_transport(env, 1, dbgo_rep_drop)) != 0)
		return rc;
	return env->rep_start(env, NULL, master ? DB_REP_MASTER : DB_REP_CLIENT);
}
