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
 * db_env_set_func_yield replaces libdb's __os_yield for the whole process
 * with dbgo_yield:
 *   - a sleep of one second asked by libdb's replication lockout loops
 *     returns after DBGO_POLL_US: the lockout taker waiting for the
 *     threads inside libdb to leave (__rep_lockout_int, called by the
 *     __rep_lockout_* functions) and __env_rep_enter re-check their
 *     condition once per sleep, and the lockout taker's whole second was
 *     the largest part of an election and of a promotion (ELECTED and
 *     MASTER each came a second late whenever any thread was inside
 *     libdb). The caller is found with backtrace(3) and dladdr(3): the
 *     first libdb frame above dbgo_yield is __env_rep_enter, or has no
 *     dynamic symbol: libdb 5.3 exports every function but its static
 *     ones, and __rep_lockout_int is the only static one that sleeps a
 *     second (the __rep_lockout_* functions call it, some as a tail
 *     call, so their own frames may be gone). libdb's other one-second
 *     sleeps (a full cache, file and backup retries) count their passes
 *     and keep their length. (__env_rep_enter counts its checks as seconds
 *     for its "waiting N minutes for replication lockout" message, which
 *     a lockout of over 0.6 s now leaves as libdb's last error message.)
 *   - a longer sleep (5 s in __op_rep_enter and __db_rep_enter, region and
 *     file open retries) keeps its length but ends at the next replication
 *     event (dbgo_rep_wake, called by dbgo_rep_notify), checked every
 *     DBGO_WAKE_SLICE_US: libdb fires DB_EVENT_REP_MASTER and _CLIENT once
 *     a role change's lockout is over. Each of these callers re-checks its
 *     condition in a loop or, for __db_rep_enter, returns DB_LOCK_DEADLOCK
 *     for its caller to retry, so waking early changes no outcome (the
 *     bounded retries of a file or region open, rare, then retry sooner
 *     if replication events come meanwhile);
 *   - shorter sleeps (mutex backoff, election waits) and yields without a
 *     pause are as libdb's own.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "repmgrgo.h"

#define DBGO_WAKE_SLICE_US 2000
#define DBGO_POLL_US 10000

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

/* dbgo_lockout_poll reports whether the libdb function that asked for the
 * sleep is one of libdb's replication lockout loops (see the file
 * comment): the first frame outside this object and __os_yield (should it
 * not be a tail call) is the asker. */
static int dbgo_lockout_poll(void) {
	void *bt[8], *osy;
	Dl_info self, lib, f;
	int i, n;
	n = backtrace(bt, 8);
	osy = dlsym(RTLD_DEFAULT, "__os_yield");
	if (osy == NULL || dladdr(osy, &lib) == 0 || dladdr((void *)dbgo_yield_install, &self) == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (dladdr(bt[i], &f) == 0)
			return 0;
		if (f.dli_fbase == self.dli_fbase ||
		    (f.dli_sname != NULL && strcmp(f.dli_sname, "__os_yield") == 0))
			continue;
		if (f.dli_fbase != lib.dli_fbase)
			return 0;
		/* No dynamic symbol: a static function, and the only one of libdb
		 * 5.3 that sleeps a second is __rep_lockout_int. */
		return f.dli_sname == NULL || strcmp(f.dli_sname, "__env_rep_enter") == 0;
	}
	return 0;
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
	if (secs == 1 && usecs == 0 && dbgo_lockout_poll()) {
		dbgo_pause(DBGO_POLL_US);
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

static void dbgo_yield_set(void) {
	void *bt[1];
	backtrace(bt, 1); /* loads the unwinder now, not inside libdb */
	db_env_set_func_yield(dbgo_yield);
}

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
