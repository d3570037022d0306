/*
 * commitc.c: raw Berkeley DB 5.3 ceilings for durusbdb's benchmark suite
 * (bench/suite). No Go, no network: what libdb and the disk can do at best
 * on this machine, so that durusbdb's figures can be read as a fraction of
 * it.
 *
 * The environment is opened like bdb.OpenStore (FORMAT.md §1): DB_CREATE |
 * DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD |
 * DB_RECOVER | DB_REGISTER, DB_LOCK_DEFAULT, DB_MULTIVERSION, 64 MiB cache;
 * objects.db a 16 KiB-page btree; 8-byte big-endian keys.
 *
 * Modes (one result line each, "key=value" pairs):
 *
 *   commitc DIR group THREADS SECONDS
 *       THREADS threads each commit one 112-byte record per transaction on
 *       adjacent keys (one shared counter). A transaction is committed
 *       DB_TXN_NOSYNC under a writer mutex (as durusbdb serialises its
 *       write transactions), then the thread joins a group flush: one
 *       DB_ENV->log_flush covers every commit waiting at that moment, and
 *       only after it does a commit count as acknowledged. This is the
 *       best durable pattern (group commit).
 *   commitc DIR sync THREADS SECONDS
 *       the same records, each transaction committed DB_TXN_SYNC, no writer
 *       mutex (a deadlocked transaction is retried).
 *   commitc DIR fsync SECONDS
 *       a raw loop of pwrite(4 KiB) + fdatasync on a preallocated file in
 *       DIR: the disk's flush latency (p50) and rate.
 *   commitc DIR bulk COUNT
 *       loads COUNT records of the suite's migrate data set (see genrec)
 *       into objects.db in DB_TXN_NOSYNC transactions of at most 20,000
 *       records or 8 MiB, then one log_flush and a checkpoint (dirty
 *       pages written, objects.db synced, as migrate does before it
 *       exits): the raw bulk-load ceiling for `durusbdb migrate`.
 *
 * DIR must not exist or be empty; it is left behind (the caller removes it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#define SMALL 112 /* a committed record: oid, int4 n, 100 data bytes */

static void die(const char *what, int rc) {
	fprintf(stderr, "commitc: %s: %s\n", what, db_strerror(rc));
	exit(1);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void putkey(unsigned char *k, uint64_t i) {
	int b;
	for (b = 7; b >= 0; b--) {
		k[b] = (unsigned char)(i & 0xff);
		i >>= 8;
	}
}

static void put32(unsigned char *p, uint32_t v) {
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * genrec writes record oid of a data set of count records into buf and
 * returns its length. It must stay identical to genRecord in
 * bench/suite/data.go: data length 200 + (oid*2654435761 mod 1601) when
 * big, else 100; data byte j = oid*7 + j*31; refs = children 2*oid+1 and
 * 2*oid+2 below count (a binary tree from the root, every object reachable).
 */
static size_t genrec(unsigned char *buf, uint64_t oid, uint64_t count, int big) {
	uint32_t n = big ? 200 + (uint32_t)((oid * 2654435761ULL) % 1601) : 100;
	size_t off = 12;
	uint32_t j;
	uint64_t c;
	putkey(buf, oid);
	put32(buf + 8, n);
	for (j = 0; j < n; j++)
		buf[off++] = (unsigned char)(oid * 7 + (uint64_t)j * 31);
	for (c = 2 * oid + 1; c <= 2 * oid + 2; c++) {
		if (c < count) {
			putkey(buf + off, c);
			off += 8;
		}
	}
	return off;
}

static DB_ENV *env;
static DB *db;

static void open_env(const char *dir) {
	int rc;
	mkdir(dir, 0755);
	if ((rc = db_env_create(&env, 0)) != 0)
		die("db_env_create", rc);
	env->set_errfile(env, stderr);
	if ((rc = env->set_cachesize(env, 0, 64 << 20, 1)) != 0)
		die("set_cachesize", rc);
	if ((rc = env->set_lk_detect(env, DB_LOCK_DEFAULT)) != 0)
		die("set_lk_detect", rc);
	env->set_lk_max_locks(env, 100000);
	env->set_lk_max_lockers(env, 10000);
	env->set_lk_max_objects(env, 100000);
	env->set_tx_max(env, 1024);
	if ((rc = env->set_flags(env, DB_MULTIVERSION, 1)) != 0)
		die("set_flags", rc);
	env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1);
	if ((rc = env->open(env, dir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOG |
	    DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER | DB_REGISTER, 0)) != 0)
		die("DB_ENV->open", rc);
	if ((rc = db_create(&db, env, 0)) != 0)
		die("db_create", rc);
	db->set_pagesize(db, 16384);
	if ((rc = db->open(db, NULL, "objects.db", NULL, DB_BTREE,
	    DB_CREATE | DB_THREAD | DB_AUTO_COMMIT, 0)) != 0)
		die("DB->open", rc);
}

static void close_env(void) {
	db->close(db, 0);
	env->close(env, 0);
}

/* ---- commit modes ---- */

static int sync_mode;          /* 1: DB_TXN_SYNC per txn, 0: group flush */
static volatile int stopping;  /* set when the run ends */
static volatile int measuring; /* set after the warm-up */
static uint64_t nextkey;       /* shared key counter: adjacent keys */
static pthread_mutex_t writer = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t gmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gcv = PTHREAD_COND_INITIALIZER;
static uint64_t committed, flushed; /* commit sequence numbers */
static int flushing;
static long flushes;

typedef struct {
	long ops;
	double *lat;
	long nlat, caplat;
} worker_t;

/* groupflush returns once a log_flush that began after commit seq my
 * completed; one thread flushes for everyone waiting. */
static void groupflush(uint64_t my) {
	int rc;
	pthread_mutex_lock(&gmu);
	while (flushed < my) {
		if (!flushing) {
			uint64_t target = committed;
			flushing = 1;
			pthread_mutex_unlock(&gmu);
			if ((rc = env->log_flush(env, NULL)) != 0)
				die("log_flush", rc);
			pthread_mutex_lock(&gmu);
			flushed = target;
			flushing = 0;
			flushes++;
			pthread_cond_broadcast(&gcv);
		} else {
			pthread_cond_wait(&gcv, &gmu);
		}
	}
	pthread_mutex_unlock(&gmu);
}

static void *worker(void *arg) {
	worker_t *w = arg;
	unsigned char k[8], v[SMALL];
	DBT key, val;
	DB_TXN *t;
	int rc, j;
	memset(v, 'a', sizeof(v));
	for (j = 12; j < SMALL; j++)
		v[j] = (unsigned char)('a' + j % 26);
	put32(v + 8, SMALL - 12);
	while (!stopping) {
		double t0 = now();
		int m = measuring;
		uint64_t my = 0;
		for (;;) {
			uint64_t i;
			if (!sync_mode)
				pthread_mutex_lock(&writer);
			i = __atomic_fetch_add(&nextkey, 1, __ATOMIC_SEQ_CST);
			putkey(k, i);
			memcpy(v, k, 8);
			memset(&key, 0, sizeof(key));
			memset(&val, 0, sizeof(val));
			key.data = k;
			key.size = 8;
			val.data = v;
			val.size = SMALL;
			if ((rc = env->txn_begin(env, NULL, &t, 0)) != 0)
				die("txn_begin", rc);
			rc = db->put(db, t, &key, &val, 0);
			if (rc == DB_LOCK_DEADLOCK || rc == DB_LOCK_NOTGRANTED) {
				t->abort(t);
				if (!sync_mode)
					pthread_mutex_unlock(&writer);
				continue;
			}
			if (rc != 0)
				die("DB->put", rc);
			if ((rc = t->commit(t, sync_mode ? DB_TXN_SYNC : DB_TXN_NOSYNC)) != 0)
				die("commit", rc);
			if (!sync_mode) {
				pthread_mutex_lock(&gmu);
				my = ++committed;
				pthread_mutex_unlock(&gmu);
				pthread_mutex_unlock(&writer);
			}
			break;
		}
		if (!sync_mode)
			groupflush(my);
		if (m && measuring) {
			w->ops++;
			if (w->nlat == w->caplat) {
				w->caplat = w->caplat ? 2 * w->caplat : 4096;
				w->lat = realloc(w->lat, w->caplat * sizeof(double));
			}
			w->lat[w->nlat++] = now() - t0;
		}
	}
	return NULL;
}

static int cmpd(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double q) {
	long i = (long)(q * n);
	if (n == 0)
		return 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void run_commits(const char *dir, const char *mode, int threads, double secs) {
	pthread_t *th = calloc(threads, sizeof(pthread_t));
	worker_t *ws = calloc(threads, sizeof(worker_t));
	double warm = secs / 5 < 0.5 ? secs / 5 : 0.5, t0, el;
	long ops = 0, n = 0, i, f0;
	double *all;
	int k;
	open_env(dir);
	for (k = 0; k < threads; k++)
		pthread_create(&th[k], NULL, worker, &ws[k]);
	usleep((useconds_t)(warm * 1e6));
	pthread_mutex_lock(&gmu);
	f0 = flushes;
	pthread_mutex_unlock(&gmu);
	measuring = 1;
	t0 = now();
	usleep((useconds_t)(secs * 1e6));
	measuring = 0;
	el = now() - t0;
	pthread_mutex_lock(&gmu);
	f0 = flushes - f0;
	pthread_mutex_unlock(&gmu);
	stopping = 1;
	for (k = 0; k < threads; k++) {
		pthread_join(th[k], NULL);
		ops += ws[k].ops;
		n += ws[k].nlat;
	}
	all = malloc((n + 1) * sizeof(double));
	n = 0;
	for (k = 0; k < threads; k++)
		for (i = 0; i < ws[k].nlat; i++)
			all[n++] = ws[k].lat[i];
	qsort(all, n, sizeof(double), cmpd);
	printf("mode=%s threads=%d ops=%ld secs=%.3f ops_per_s=%.0f p50_us=%.0f p99_us=%.0f flushes_per_s=%.0f\n",
	    mode, threads, ops, el, ops / el, pct(all, n, 0.5) * 1e6, pct(all, n, 0.99) * 1e6,
	    sync_mode ? 0 : f0 / el);
	close_env();
}

/* ---- fdatasync loop ---- */

static void run_fsync(const char *dir, double secs) {
	char path[4096];
	static char buf[4096];
	long n = 0, cap = 1 << 16;
	double *lat = malloc(cap * sizeof(double)), t0, end;
	off_t off = 0, size = 64 << 20;
	int fd;
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/fsync.dat", dir);
	if ((fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644)) < 0)
		die("open fsync file", errno);
	if (posix_fallocate(fd, 0, size) != 0)
		die("posix_fallocate", errno);
	fsync(fd);
	memset(buf, 'x', sizeof(buf));
	t0 = now();
	end = t0 + secs;
	while (now() < end) {
		double a = now();
		if (pwrite(fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
			die("pwrite", errno);
		if (fdatasync(fd) != 0)
			die("fdatasync", errno);
		off = (off + sizeof(buf)) % size;
		if (n == cap) {
			cap *= 2;
			lat = realloc(lat, cap * sizeof(double));
		}
		lat[n++] = now() - a;
	}
	qsort(lat, n, sizeof(double), cmpd);
	printf("mode=fsync ops=%ld secs=%.3f ops_per_s=%.0f p50_us=%.0f p99_us=%.0f\n",
	    n, now() - t0, n / (now() - t0), pct(lat, n, 0.5) * 1e6, pct(lat, n, 0.99) * 1e6);
	close(fd);
	unlink(path);
}

/* ---- bulk load ---- */

static void run_bulk(const char *dir, uint64_t count) {
	unsigned char *rec = malloc(8192), k[8];
	DBT key, val;
	DB_TXN *t = NULL;
	uint64_t oid, bytes = 0, inTxn = 0, txnBytes = 0;
	double t0, el;
	int rc;
	open_env(dir);
	t0 = now();
	for (oid = 0; oid < count; oid++) {
		size_t n = genrec(rec, oid, count, 1);
		if (t == NULL && (rc = env->txn_begin(env, NULL, &t, 0)) != 0)
			die("txn_begin", rc);
		putkey(k, oid);
		memset(&key, 0, sizeof(key));
		memset(&val, 0, sizeof(val));
		key.data = k;
		key.size = 8;
		val.data = rec;
		val.size = (u_int32_t)n;
		if ((rc = db->put(db, t, &key, &val, 0)) != 0)
			die("DB->put", rc);
		bytes += n;
		inTxn++;
		txnBytes += n;
		if (inTxn == 20000 || txnBytes >= 8 << 20) {
			if ((rc = t->commit(t, DB_TXN_NOSYNC)) != 0)
				die("commit", rc);
			t = NULL;
			inTxn = txnBytes = 0;
		}
	}
	if (t != NULL && (rc = t->commit(t, DB_TXN_NOSYNC)) != 0)
		die("commit", rc);
	if ((rc = env->log_flush(env, NULL)) != 0)
		die("log_flush", rc);
	/* A checkpoint writes the cache's dirty pages and syncs objects.db, as
	 * `durusbdb migrate` does before it exits: both figures then include
	 * making the loaded database durable. */
	if ((rc = env->txn_checkpoint(env, 0, 0, 0)) != 0)
		die("txn_checkpoint", rc);
	el = now() - t0;
	printf("mode=bulk records=%llu bytes=%llu secs=%.3f records_per_s=%.0f mb_per_s=%.1f\n",
	    (unsigned long long)count, (unsigned long long)bytes, el, count / el, bytes / el / 1e6);
	close_env();
}

int main(int argc, char **argv) {
	if (argc >= 5 && (!strcmp(argv[2], "group") || !strcmp(argv[2], "sync"))) {
		sync_mode = !strcmp(argv[2], "sync");
		run_commits(argv[1], argv[2], atoi(argv[3]), atof(argv[4]));
	} else if (argc >= 4 && !strcmp(argv[2], "fsync")) {
		run_fsync(argv[1], atof(argv[3]));
	} else if (argc >= 4 && !strcmp(argv[2], "bulk")) {
		run_bulk(argv[1], strtoull(argv[3], NULL, 10));
	} else {
		fprintf(stderr, "usage: commitc DIR group|sync THREADS SECONDS | DIR fsync SECONDS | DIR bulk COUNT\n");
		return 2;
	}
	return 0;
}
