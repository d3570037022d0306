/*
 * libdbgo.h: C helpers for package libdb. Each wrapper builds its DBTs on
 * the C stack from flat (char *, size_t) arguments and never keeps a
 * pointer to Go memory after it returns (STYLE.md §2).
 */
#ifndef DBGO_H
#define DBGO_H

#include <stdlib.h>
#include <string.h>
#include <db.h>

/* Flat copies of the libdb statistics the Go side exposes. */
typedef struct {
	u_int32_t last_ckp_file, last_ckp_offset;
	int64_t time_ckp;
	u_int32_t last_txnid, maxtxns, nactive, nsnapshot, maxnactive;
	u_int64_t naborts, nbegins, ncommits;
} dbgo_txn_stat_t;

typedef struct {
	u_int32_t lg_bsize, lg_size, w_bytes, w_mbytes, wc_bytes, wc_mbytes;
	u_int32_t cur_file, cur_offset, disk_file, disk_offset;
	u_int64_t record, wcount, wcount_fill, scount;
} dbgo_log_stat_t;

typedef struct {
	u_int32_t gbytes, bytes, ncache, pages, page_clean, page_dirty;
	u_int64_t cache_hit, cache_miss, page_create, page_in, page_out;
	u_int64_t ro_evict, rw_evict;
} dbgo_mpool_stat_t;

typedef struct {
	int type; /* DB_BTREE or DB_HASH */
	u_int32_t nkeys, ndata, pagesize, pagecnt;
	u_int32_t levels, int_pg, leaf_pg, dup_pg, over_pg, free_pg;	/* btree */
	u_int32_t buckets, bigpages, overflows;			/* hash */
} dbgo_db_stat_t;

int dbgo_strerror_copy(int code, char *buf, size_t cap);

int dbgo_env_create(DB_ENV **out);
int dbgo_env_open(DB_ENV *env, char *home, u_int32_t flags, int mode);
int dbgo_env_close(DB_ENV *env, u_int32_t flags);
int dbgo_env_set_cachesize(DB_ENV *env, u_int32_t gbytes, u_int32_t bytes, int ncache);
int dbgo_env_set_lk_detect(DB_ENV *env, u_int32_t mode);
int dbgo_env_set_lk_max(DB_ENV *env, u_int32_t locks, u_int32_t lockers, u_int32_t objects);
int dbgo_env_set_tx_max(DB_ENV *env, u_int32_t max);
int dbgo_env_set_flags(DB_ENV *env, u_int32_t flags, int onoff);
int dbgo_env_txn_checkpoint(DB_ENV *env, u_int32_t kbyte, u_int32_t min, u_int32_t flags);
int dbgo_env_memp_trickle(DB_ENV *env, int pct, int *nwrote);
int dbgo_env_log_archive(DB_ENV *env, u_int32_t flags, char *buf, size_t cap, size_t *need);
int dbgo_env_log_flush(DB_ENV *env);
int dbgo_env_txn_stat(DB_ENV *env, dbgo_txn_stat_t *out);
int dbgo_env_log_stat(DB_ENV *env, dbgo_log_stat_t *out);
int dbgo_env_memp_stat(DB_ENV *env, dbgo_mpool_stat_t *out);
int dbgo_env_capture_errors(DB_ENV *env);
size_t dbgo_env_last_error(DB_ENV *env, int cause, char *buf, size_t cap);

int dbgo_db_create(DB **out, DB_ENV *env);
int dbgo_db_set_pagesize(DB *db, u_int32_t size);
int dbgo_db_set_flags(DB *db, u_int32_t flags);
int dbgo_db_get_flags(DB *db, u_int32_t *flags);
int dbgo_db_open(DB *db, DB_TXN *txn, char *file, int type, u_int32_t flags, int mode);
int dbgo_db_close(DB *db, u_int32_t flags);
int dbgo_db_get(DB *db, DB_TXN *txn, char *k, size_t kn, char *buf, size_t cap,
    u_int32_t *need, u_int32_t flags);
int dbgo_db_put(DB *db, DB_TXN *txn, char *k, size_t kn, char *v, size_t vn, u_int32_t flags);
int dbgo_db_del(DB *db, DB_TXN *txn, char *k, size_t kn, u_int32_t flags);
int dbgo_db_get_pagesize(DB *db, u_int32_t *size);
int dbgo_db_last_pgno(DB *db, u_int32_t *pgno);
int dbgo_db_get_type(DB *db, int *type);
int dbgo_db_stat(DB *db, DB_TXN *txn, dbgo_db_stat_t *out, u_int32_t flags);
int dbgo_db_verify(DB_ENV *env, char *file, u_int32_t flags);

int dbgo_txn_begin(DB_ENV *env, DB_TXN *parent, DB_TXN **out, u_int32_t flags);
int dbgo_txn_commit(DB_TXN *txn, u_int32_t flags);
int dbgo_txn_abort(DB_TXN *txn);
u_int32_t dbgo_txn_id(DB_TXN *txn);

int dbgo_db_cursor(DB *db, DB_TXN *txn, DBC **out, u_int32_t flags);
int dbgo_dbc_close(DBC *c);
int dbgo_dbc_get(DBC *c, char *kbuf, size_t kn, size_t kcap, u_int32_t *kneed,
    char *vbuf, size_t vcap, u_int32_t *vneed, u_int32_t flags);
int dbgo_dbc_get_multiple_key(DBC *c, char *buf, size_t cap, u_int32_t *need, u_int32_t flags);
int dbgo_dbc_put(DBC *c, char *k, size_t kn, char *v, size_t vn, u_int32_t flags);
int dbgo_dbc_del(DBC *c, u_int32_t flags);

#endif
