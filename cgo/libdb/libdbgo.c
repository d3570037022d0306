//go:build bdb

/*
 * libdbgo.c: thin C wrappers over libdb 5.3 for package libdb. See
 * libdbgo.h. No function here keeps a pointer to caller memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "libdbgo.h"

int dbgo_strerror_copy(int code, char *buf, size_t cap) {
	const char *s = db_strerror(code);
	size_t n = strlen(s);
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, s, n);
	buf[n] = 0;
	return (int)n;
}

/* ---- environment ---- */

/*
 * Per-environment private state (app_private): the last libdb message, and
 * the message just before the first "PANIC" one (what made libdb panic the
 * environment, such as a page's checksum error), kept from then on.
 */
typedef struct {
	pthread_mutex_t mu;
	char msg[1024];
	char cause[1024];
	int panicked;
} dbgo_env_private;

static void dbgo_errcall(const DB_ENV *env, const char *pfx, const char *msg) {
	dbgo_env_private *p = (dbgo_env_private *)env->app_private;
	(void)pfx;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	if (!p->panicked && strstr(msg, "PANIC") != NULL) {
		p->panicked = 1;
		memcpy(p->cause, p->msg, sizeof(p->cause));
	}
	snprintf(p->msg, sizeof(p->msg), "%s", msg);
	pthread_mutex_unlock(&p->mu);
}

int dbgo_env_capture_errors(DB_ENV *env) {
	dbgo_env_private *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	env->app_private = p;
	env->set_errcall(env, dbgo_errcall);
	return 0;
}

size_t dbgo_env_last_error(DB_ENV *env, int cause, char *buf, size_t cap) {
	dbgo_env_private *p = (dbgo_env_private *)env->app_private;
	const char *src;
	size_t n;
	if (p == NULL || cap == 0)
		return 0;
	pthread_mutex_lock(&p->mu);
	src = cause ? p->cause : p->msg;
	n = strlen(src);
	if (n > cap)
		n = cap;
	memcpy(buf, src, n);
	pthread_mutex_unlock(&p->mu);
	return n;
}


int dbgo_env_create(DB_ENV **out) { return db_env_create(out, 0); }

int dbgo_env_open(DB_ENV *env, char *home, u_int32_t flags, int mode) {
	return env->open(env, home, flags, mode);
}

int dbgo_env_close(DB_ENV *env, u_int32_t flags) {
	dbgo_env_private *p = (dbgo_env_private *)env->app_private;
	int rc = env->close(env, flags);
	if (p != NULL) {
		pthread_mutex_destroy(&p->mu);
		free(p);
	}
	return rc;
}

int dbgo_env_set_cachesize(DB_ENV *env, u_int32_t gbytes, u_int32_t bytes, int ncache) {
	return env->set_cachesize(env, gbytes, bytes, ncache);
}

int dbgo_env_set_lk_detect(DB_ENV *env, u_int32_t mode) {
	return env->set_lk_detect(env, mode);
}

int dbgo_env_set_lk_max(DB_ENV *env, u_int32_t locks, u_int32_t lockers, u_int32_t objects) {
	int rc = 0;
	if (locks != 0 && (rc = env->set_lk_max_locks(env, locks)) != 0)
		return rc;
	if (lockers != 0 && (rc = env->set_lk_max_lockers(env, lockers)) != 0)
		return rc;
	if (objects != 0 && (rc = env->set_lk_max_objects(env, objects)) != 0)
		return rc;
	return 0;
}

int dbgo_env_set_tx_max(DB_ENV *env, u_int32_t max) { return env->set_tx_max(env, max); }


int dbgo_env_set_flags(DB_ENV *env, u_int32_t flags, int onoff) {
	return env->set_flags(env, flags, onoff);
}


int dbgo_env_txn_checkpoint(DB_ENV *env, u_int32_t kbyte, u_int32_t min, u_int32_t flags) {
	return env->txn_checkpoint(env, kbyte, min, flags);
}

int dbgo_env_memp_trickle(DB_ENV *env, int pct, int *nwrote) {
	return env->memp_trickle(env, pct, nwrote);
}

int dbgo_env_log_archive(DB_ENV *env, u_int32_t flags, char *buf, size_t cap, size_t *need) {
	char **list = NULL, **p;
	size_t total = 0, off = 0, n;
	int rc = env->log_archive(env, (flags & DB_ARCH_REMOVE) ? NULL : &list, flags);
	*need = 0;
	if (rc != 0 || list == NULL)
		return rc;
	for (p = list; *p != NULL; p++)
		total += strlen(*p) + 1;
	*need = total;
	if (total <= cap) {
		for (p = list; *p != NULL; p++) {
			n = strlen(*p) + 1;
			memcpy(buf + off, *p, n);
			off += n;
		}
	}
	free(list);
	return 0;
}

int dbgo_env_log_flush(DB_ENV *env) { return env->log_flush(env, NULL); }

int dbgo_env_txn_stat(DB_ENV *env, dbgo_txn_stat_t *out) {
	DB_TXN_STAT *s = NULL;
	int rc = env->txn_stat(env, &s, 0);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->last_ckp_file = s->st_last_ckp.file;
	out->last_ckp_offset = s->st_last_ckp.offset;
	out->time_ckp = (int64_t)s->st_time_ckp;
	out->last_txnid = s->st_last_txnid;
	out->maxtxns = s->st_maxtxns;
	out->nactive = s->st_nactive;
	out->nsnapshot = s->st_nsnapshot;
	out->maxnactive = s->st_maxnactive;
	out->naborts = s->st_naborts;
	out->nbegins = s->st_nbegins;
	out->ncommits = s->st_ncommits;
	free(s);
	return 0;
}

int dbgo_env_log_stat(DB_ENV *env, dbgo_log_stat_t *out) {
	DB_LOG_STAT *s = NULL;
	int rc = env->log_stat(env, &s, 0);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->lg_bsize = s->st_lg_bsize;
	out->lg_size = s->st_lg_size;
	out->w_bytes = s->st_w_bytes;
	out->w_mbytes = s->st_w_mbytes;
	out->wc_bytes = s->st_wc_bytes;
	out->wc_mbytes = s->st_wc_mbytes;
	out->cur_file = s->st_cur_file;
	out->cur_offset = s->st_cur_offset;
	out->disk_file = s->st_disk_file;
	out->disk_offset = s->st_disk_offset;
	out->record = s->st_record;
	out->wcount = s->st_wcount;
	out->wcount_fill = s->st_wcount_fill;
	out->scount = s->st_scount;
	free(s);
	return 0;
}

int dbgo_env_memp_stat(DB_ENV *env, dbgo_mpool_stat_t *out) {
	DB_MPOOL_STAT *s = NULL;
	int rc = env->memp_stat(env, &s, NULL, 0);
	if (rc != 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->gbytes = s->st_gbytes;
	out->bytes = s->st_bytes;
	out->ncache = s->st_ncache;
	out->pages = s->st_pages;
	out->page_clean = s->st_page_clean;
	out->page_dirty = s->st_page_dirty;
	out->cache_hit = s->st_cache_hit;
	out->cache_miss = s->st_cache_miss;
	out->page_create = s->st_page_create;
	out->page_in = s->st_page_in;
	out->page_out = s->st_page_out;
	out->ro_evict = s->st_ro_evict;
	out->rw_evict = s->st_rw_evict;
	free(s);
	return 0;
}

/* ---- databases ---- */

int dbgo_db_create(DB **out, DB_ENV *env) { return db_create(out, env, 0); }

int dbgo_db_set_pagesize(DB *db, u_int32_t size) { return db->set_pagesize(db, size); }

int dbgo_db_set_flags(DB *db, u_int32_t flags) { return db->set_flags(db, flags); }

int dbgo_db_get_flags(DB *db, u_int32_t *flags) { return db->get_flags(db, flags); }

int dbgo_db_open(DB *db, DB_TXN *txn, char *file, int type, u_int32_t flags, int mode) {
	return db->open(db, txn, file, NULL, (DBTYPE)type, flags, mode);
}

int dbgo_db_close(DB *db, u_int32_t flags) { return db->close(db, flags); }

int dbgo_db_get(DB *db, DB_TXN *txn, char *k, size_t kn, char *buf, size_t cap,
    u_int32_t *need, u_int32_t flags) {
	DBT key, val;
	int rc;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = k;
	key.size = (u_int32_t)kn;
	val.data = buf;
	val.ulen = (u_int32_t)cap;
	val.flags = DB_DBT_USERMEM;
	rc = db->get(db, txn, &key, &val, flags);
	*need = val.size;
	return rc;
}

int dbgo_db_put(DB *db, DB_TXN *txn, char *k, size_t kn, char *v, size_t vn, u_int32_t flags) {
	DBT key, val;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = k;
	key.size = (u_int32_t)kn;
	val.data = v;
	val.size = (u_int32_t)vn;
	return db->put(db, txn, &key, &val, flags);
}

int dbgo_db_del(DB *db, DB_TXN *txn, char *k, size_t kn, u_int32_t flags) {
	DBT key;
	memset(&key, 0, sizeof(key));
	key.data = k;
	key.size = (u_int32_t)kn;
	return db->del(db, txn, &key, flags);
}

int dbgo_db_get_pagesize(DB *db, u_int32_t *size) { return db->get_pagesize(db, size); }
int dbgo_db_last_pgno(DB *db, u_int32_t *pgno) {
	DB_MPOOLFILE *mpf = db->get_mpf(db);
	if (mpf == NULL)
		return EINVAL;
	return mpf->get_last_pgno(mpf, pgno);
}

int dbgo_db_get_type(DB *db, int *type) {
	DBTYPE t;
	int rc = db->get_type(db, &t);
	*type = (int)t;
	return rc;
}

int dbgo_db_stat(DB *db, DB_TXN *txn, dbgo_db_stat_t *out, u_int32_t flags) {
	DBTYPE t;
	void *sp = NULL;
	int rc;
	memset(out, 0, sizeof(*out));
	if ((rc = db->get_type(db, &t)) != 0)
		return rc;
	if ((rc = db->stat(db, txn, &sp, flags)) != 0)
		return rc;
	out->type = (int)t;
	if (t == DB_BTREE || t == DB_RECNO) {
		DB_BTREE_STAT *s = sp;
		out->nkeys = s->bt_nkeys;
		out->ndata = s->bt_ndata;
		out->pagesize = s->bt_pagesize;
		out->pagecnt = s->bt_pagecnt;
		out->levels = s->bt_levels;
		out->int_pg = s->bt_int_pg;
		out->leaf_pg = s->bt_leaf_pg;
		out->dup_pg = s->bt_dup_pg;
		out->over_pg = s->bt_over_pg;
		out->free_pg = s->bt_free;
	} else if (t == DB_HASH) {
		DB_HASH_STAT *s = sp;
		out->nkeys = s->hash_nkeys;
		out->ndata = s->hash_ndata;
		out->pagesize = s->hash_pagesize;
		out->pagecnt = s->hash_pagecnt;
		out->buckets = s->hash_buckets;
		out->free_pg = s->hash_free;
		out->bigpages = s->hash_bigpages;
		out->overflows = s->hash_overflows;
		out->dup_pg = s->hash_dup;
	}
	free(sp);
	return 0;
}


int dbgo_db_verify(DB_ENV *env, char *file, u_int32_t flags) {
	DB *db = NULL;
	int rc = db_create(&db, env, 0);
	if (rc != 0)
		return rc;
	/* DB->verify destroys the handle whatever it returns. */
	return db->verify(db, file, NULL, NULL, flags);
}

/* ---- transactions ---- */

int dbgo_txn_begin(DB_ENV *env, DB_TXN *parent, DB_TXN **out, u_int32_t flags) {
	return env->txn_begin(env, parent, out, flags);
}

int dbgo_txn_commit(DB_TXN *txn, u_int32_t flags) { return txn->commit(txn, flags); }

int dbgo_txn_abort(DB_TXN *txn) { return txn->abort(txn); }

u_int32_t dbgo_txn_id(DB_TXN *txn) { return txn->id(txn); }

/* ---- cursors ---- */

int dbgo_db_cursor(DB *db, DB_TXN *txn, DBC **out, u_int32_t flags) {
	return db->cursor(db, txn, out, flags);
}

int dbgo_dbc_close(DBC *c) { return c->close(c); }

/*
 * dbgo_dbc_get: kbuf holds the input key (kn bytes) for DB_SET_RANGE and
 * receives the key found (capacity kcap); vbuf receives the value. On
 * DB_BUFFER_SMALL *kneed and *vneed give the sizes and the cursor has not
 * moved, so the caller retries the same operation with larger buffers.
 */
int dbgo_dbc_get(DBC *c, char *kbuf, size_t kn, size_t kcap, u_int32_t *kneed,
    char *vbuf, size_t vcap, u_int32_t *vneed, u_int32_t flags) {
	DBT key, val;
	int rc;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = kbuf;
	key.size = (u_int32_t)kn;
	key.ulen = (u_int32_t)kcap;
	key.flags = DB_DBT_USERMEM;
	val.data = vbuf;
	val.ulen = (u_int32_t)vcap;
	val.flags = DB_DBT_USERMEM;
	rc = c->get(c, &key, &val, flags);
	*kneed = key.size;
	*vneed = val.size;
	return rc;
}

/*
 * dbgo_dbc_get_multiple_key: bulk DBC->get with DB_MULTIPLE_KEY into buf
 * (cap bytes, a multiple of 1024, at least a page). On DB_BUFFER_SMALL
 * *need is the size the next record needs.
 */
int dbgo_dbc_get_multiple_key(DBC *c, char *buf, size_t cap, u_int32_t *need, u_int32_t flags) {
	DBT key, val;
	int rc;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	val.data = buf;
	val.ulen = (u_int32_t)cap;
	val.flags = DB_DBT_USERMEM;
	rc = c->get(c, &key, &val, flags | DB_MULTIPLE_KEY);
	*need = val.size;
	return rc;
}

int dbgo_dbc_put(DBC *c, char *k, size_t kn, char *v, size_t vn, u_int32_t flags) {
	DBT key, val;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = k;
	key.size = (u_int32_t)kn;
	val.data = v;
	val.size = (u_int32_t)vn;
	return c->put(c, &key, &val, flags);
}

int dbgo_dbc_del(DBC *c, u_int32_t flags) { return c->del(c, flags); }
