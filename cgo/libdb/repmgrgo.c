//go:build bdb

/*
 * repmgrgo.c: Replication Manager helpers of package libdb.
 *
 * Events: DB_ENV->set_event_notify calls dbgo_rep_notify on repmgr's own
 * threads (and, for DB_EVENT_REP_PERM_FAILED, on the committing thread
 * inside DB_TXN->commit). It may not call Go, so it appends the event to a
 * bounded ring found through a small registry keyed by the DB_ENV pointer
 * (DB_ENV->app_private already belongs to the error capture of
 * libdbgo.c); a Go goroutine drains the ring with dbgo_rep_wait.
 *
 * PERM_FAILED of one commit: the callback also sets a thread-local flag
 * that dbgo_txn_commit_rep clears before and reads after DB_TXN->commit,
 * in the same C call and so on the same OS thread.
 *
 * TCP_NODELAY: libdb 5.3's repmgr never sets it, so every replicated
 * commit waits for Nagle and the peer's delayed ACK (~45 ms). This file
 * defines connect() and accept(), which the executable's dynamic symbol
 * table exports ahead of libc's, so libdb's calls land here; they forward
 * to libc's through dlsym(RTLD_NEXT) and set TCP_NODELAY on IPv4/IPv6
 * stream sockets while dbgo_set_nodelay(1) is in force. Go's own net
 * package makes raw system calls and is not affected.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "repmgrgo.h"

#define DBGO_REP_RING 1024

struct dbgo_rep {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	DB_ENV *env;
	dbgo_rep_event ring[DBGO_REP_RING];
	int head, count, closed;
	u_int64_t dropped;
	struct dbgo_rep *next;
};

static pthread_mutex_t dbgo_rep_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static dbgo_rep *dbgo_rep_reg;
static __thread int dbgo_perm_failed;
static volatile int dbgo_nodelay;

static void dbgo_rep_notify(DB_ENV *env, u_int32_t event, void *info) {
	dbgo_rep *r;
	dbgo_rep_event ev;
	dbgo_rep_wake();
	if (event == DB_EVENT_REP_PERM_FAILED)
		dbgo_perm_failed = 1;
	/* The registry lock is held while the event is queued: dbgo_rep_free
	 * unregisters under it, so r stays valid here. */
	pthread_mutex_lock(&dbgo_rep_reg_mu);
	for (r = dbgo_rep_reg; r != NULL && r->env != env; r = r->next)
		;
	if (r == NULL) {
		pthread_mutex_unlock(&dbgo_rep_reg_mu);
		return;
	}
	ev.type = (int)event;
	ev.eid = DB_EID_INVALID;
	if (event == DB_EVENT_REP_NEWMASTER && info != NULL)
		ev.eid = *(int *)info;
	pthread_mutex_lock(&r->mu);
	if (r->count == DBGO_REP_RING) {
		r->dropped++;
	} else {
		r->ring[(r->head + r->count) % DBGO_REP_RING] = ev;
		r->count++;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	pthread_mutex_unlock(&dbgo_rep_reg_mu);
}

int dbgo_rep_attach(DB_ENV *env, dbgo_rep **out) {
	dbgo_rep *r = calloc(1, sizeof(*r));
	int rc;
	if (r == NULL)
		return ENOMEM;
	dbgo_yield_install();
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->env = env;
	if ((rc = env->set_event_notify(env, dbgo_rep_notify)) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return rc;
	}
	pthread_mutex_lock(&dbgo_rep_reg_mu);
	r->next = dbgo_rep_reg;
	dbgo_rep_reg = r;
	pthread_mutex_unlock(&dbgo_rep_reg_mu);
	*out = r;
	return 0;
}

/* dbgo_rep_close wakes the reader for good; call it after DB_ENV->close. */
void dbgo_rep_close(dbgo_rep *r) {
	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* dbgo_rep_free unregisters and frees r once no reader waits on it. */
void dbgo_rep_free(dbgo_rep *r) {
	dbgo_rep **pp;
	pthread_mutex_lock(&dbgo_rep_reg_mu);
	for (pp = &dbgo_rep_reg; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	pthread_mutex_unlock(&dbgo_rep_reg_mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* dbgo_rep_wait takes the oldest event: 1 if one was taken, 0 after
 * timeout_ms without one, -1 once closed and drained. */
int dbgo_rep_wait(dbgo_rep *r, int timeout_ms, dbgo_rep_event *ev, u_int64_t *dropped) {
	struct timespec ts;
	int rc = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (r->count == 0 && !r->closed && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	*dropped = r->dropped;
	if (r->count > 0) {
		*ev = r->ring[r->head];
		r->head = (r->head + 1) % DBGO_REP_RING;
		r->count--;
		rc = 1;
	} else {
		rc = r->closed ? -1 : 0;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* dbgo_repmgr_site configures a site: which is a bit set of 1
 * DB_LOCAL_SITE, 2 DB_GROUP_CREATOR, 4 DB_BOOTSTRAP_HELPER, 8
 * DB_REPMGR_PEER. With eid_out it also returns the site's id. */
int dbgo_repmgr_site(DB_ENV *env, char *host, u_int port, u_int32_t which, int eid_out, int *eid) {
	DB_SITE *s = NULL;
	int rc, rc2;
	if ((rc = env->repmgr_site(env, host, port, &s, 0)) != 0)
		return rc;
	if ((which & 1) && (rc = s->set_config(s, DB_LOCAL_SITE, 1)) != 0)
		goto out;
	if ((which & 2) && (rc = s->set_config(s, DB_GROUP_CREATOR, 1)) != 0)
		goto out;
	if ((which & 4) && (rc = s->set_config(s, DB_BOOTSTRAP_HELPER, 1)) != 0)
		goto out;
	if ((which & 8) && (rc = s->set_config(s, DB_REPMGR_PEER, 1)) != 0)
		goto out;
	if (eid_out)
		rc = s->get_eid(s, eid);
out:
	rc2 = s->close(s);
	return rc != 0 ? rc : rc2;
}

/* dbgo_repmgr_remove_site removes a site from the group for good
 * (DB_SITE->remove, which also frees the handle). */
int dbgo_repmgr_remove_site(DB_ENV *env, char *host, u_int port) {
	DB_SITE *s = NULL;
	int rc;
	if ((rc = env->repmgr_site(env, host, port, &s, 0)) != 0)
		return rc;
	return s->remove(s);
}

int dbgo_repmgr_site_address(DB_ENV *env, int eid, char *host, size_t cap, u_int *port) {
	DB_SITE *s = NULL;
	const char *h = NULL;
	int rc, rc2;
	if ((rc = env->repmgr_site_by_eid(env, eid, &s)) != 0)
		return rc;
	rc = s->get_address(s, &h, port);
	if (rc == 0 && cap > 0) {
		strncpy(host, h, cap - 1);
		host[cap - 1] = '\0';
	}
	rc2 = s->close(s);
	return rc != 0 ? rc : rc2;
}

int dbgo_repmgr_set_ack_policy(DB_ENV *env, int policy) {
	return env->repmgr_set_ack_policy(env, policy);
}

int dbgo_rep_set_priority(DB_ENV *env, u_int32_t priority) {
	return env->rep_set_priority(env, priority);
}

int dbgo_rep_set_timeout(DB_ENV *env, int which, u_int32_t usec) {
	return env->rep_set_timeout(env, which, usec);
}

int dbgo_rep_set_config(DB_ENV *env, u_int32_t which, int onoff) {
	return env->rep_set_config(env, which, onoff);
}

int dbgo_repmgr_start(DB_ENV *env, int nthreads, u_int32_t flags) {
	return env->repmgr_start(env, nthreads, flags);
}

int dbgo_rep_stat(DB_ENV *env, dbgo_rep_stat_t *out) {
	DB_REP_STAT *s = NULL;
	int rc = env->rep_stat(env, &s, 0);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->status = s->st_status;
	out->env_id = (int)s->st_env_id;
	out->master = (int)s->st_master;
	out->next_file = s->st_next_lsn.file;
	out->next_offset = s->st_next_lsn.offset;
	out->ready_file = s->st_waiting_lsn.file;
	out->ready_offset = s->st_waiting_lsn.offset;
	out->master_changes = s->st_master_changes;
	out->elections = s->st_elections;
	out->log_queued = s->st_log_queued;
	out->startup_complete = s->st_startup_complete;
	free(s);
	return 0;
}

/* dbgo_txn_commit_rep commits and reports in *perm_failed whether
 * DB_EVENT_REP_PERM_FAILED fired during this commit. With token non-NULL
 * (DB_TXN_TOKEN_SIZE bytes) it also returns the commit token. */
int dbgo_txn_commit_rep(DB_TXN *txn, u_int32_t flags, int *perm_failed, unsigned char *token) {
	DB_TXN_TOKEN tok;
	int rc;
	if (token != NULL && (rc = txn->set_commit_token(txn, &tok)) != 0) {
		txn->abort(txn);
		return rc;
	}
	dbgo_perm_failed = 0;
	rc = txn->commit(txn, flags);
	*perm_failed = dbgo_perm_failed;
	dbgo_perm_failed = 0;
	if (rc == 0 && token != NULL)
		memcpy(token, tok.buf, DB_TXN_TOKEN_SIZE);
	return rc;
}

int dbgo_txn_applied(DB_ENV *env, unsigned char *token, u_int32_t timeout_usec) {
	DB_TXN_TOKEN tok;
	memcpy(tok.buf, token, DB_TXN_TOKEN_SIZE);
	return env->txn_applied(env, &tok, timeout_usec, 0);
}

void dbgo_set_nodelay(int on) { __atomic_store_n(&dbgo_nodelay, on, __ATOMIC_SEQ_CST); }

int dbgo_get_nodelay(void) { return __atomic_load_n(&dbgo_nodelay, __ATOMIC_SEQ_CST); }

/* dbgo_tcp_nodelay sets TCP_NODELAY on fd if it is an IPv4/IPv6 stream
 * socket; errors are ignored (the socket then just keeps Nagle). */
static void dbgo_tcp_nodelay(int fd) {
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int type = 0, one = 1, saved = errno;
	socklen_t tlen = sizeof(type);
	if (!dbgo_get_nodelay())
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM &&
	    getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	errno = saved;
}

typedef int (*dbgo_connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*dbgo_accept_fn)(int, struct sockaddr *, socklen_t *);

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
	static dbgo_connect_fn real;
	if (real == NULL)
		real = (dbgo_connect_fn)dlsym(RTLD_NEXT, "connect");
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	dbgo_tcp_nodelay(fd);
	return real(fd, addr, len);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
	static dbgo_accept_fn real;
	int nfd;
	if (real == NULL)
		real = (dbgo_accept_fn)dlsym(RTLD_NEXT, "accept");
	if (real == NULL) {
		errno = ENOSYS;
		return -1;
	}
	nfd = real(fd, addr, len);
	if (nfd >= 0)
		dbgo_tcp_nodelay(nfd);
	return nfd;
}
