/*
 * repmgrgo.h: C helpers for the Replication Manager bindings of package
 * libdb (repmgr.go). Events reach Go through a per-environment C ring that
 * a Go goroutine drains with dbgo_rep_wait; no Go pointer is kept by C and
 * no C memory is handed to Go.
 */
#ifndef DBGO_REPMGR_H
#define DBGO_REPMGR_H

#include <db.h>

/* One replication event: its DB_EVENT_* code and, for NEWMASTER, the
 * master's environment id (else DB_EID_INVALID). */
typedef struct {
	int type;
	int eid;
} dbgo_rep_event;

typedef struct dbgo_rep dbgo_rep;

/* The current replication state from DB_ENV->rep_stat. */
typedef struct {
	u_int32_t status; /* DB_REP_MASTER, DB_REP_CLIENT or 0 */
	int env_id, master;
	u_int32_t next_file, next_offset;   /* next LSN used or expected */
	u_int32_t ready_file, ready_offset; /* replica: next LSN to apply */
	u_int64_t master_changes, elections, log_queued;
	u_int32_t startup_complete;
} dbgo_rep_stat_t;

int dbgo_rep_attach(DB_ENV *env, dbgo_rep **out);

/* repmgr_wake.c: end libdb's long sleeps at the next replication event. */
void dbgo_rep_wake(void);
void dbgo_yield_install(void);
int dbgo_rep_start_alone(DB_ENV *env, int master);
void dbgo_rep_close(dbgo_rep *r);
void dbgo_rep_free(dbgo_rep *r);
int dbgo_rep_wait(dbgo_rep *r, int timeout_ms, dbgo_rep_event *ev, u_int64_t *dropped);

int dbgo_repmgr_site(DB_ENV *env, char *host, u_int port, u_int32_t which, int eid_out, int *eid);
int dbgo_repmgr_remove_site(DB_ENV *env, char *host, u_int port);
int dbgo_repmgr_site_address(DB_ENV *env, int eid, char *host, size_t cap, u_int *port);
int dbgo_repmgr_set_ack_policy(DB_ENV *env, int policy);
int dbgo_rep_set_priority(DB_ENV *env, u_int32_t priority);
int dbgo_rep_set_timeout(DB_ENV *env, int which, u_int32_t usec);
int dbgo_rep_set_config(DB_ENV *env, u_int32_t which, int onoff);
int dbgo_repmgr_start(DB_ENV *env, int nthreads, u_int32_t flags);
int dbgo_rep_stat(DB_ENV *env, dbgo_rep_stat_t *out);

int dbgo_txn_commit_rep(DB_TXN *txn, u_int32_t flags, int *perm_failed, unsigned char *token);
int dbgo_txn_applied(DB_ENV *env, unsigned char *token, u_int32_t timeout_usec);

void dbgo_set_nodelay(int on);
int dbgo_get_nodelay(void);

#endif
