/*
 * bench.c: the project's shared benchmark shapes (kv/kvtest/bench.go, run
 * on the Store by bdb/bench_test.go) done through libdb directly, for the
 * Go/C ratios that run.sh prints.
 *
 * Same environment as bdb.OpenStore (FORMAT.md §1): DB_CREATE |
 * DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD |
 * DB_RECOVER | DB_REGISTER, DB_LOCK_DEFAULT, DB_MULTIVERSION, 64 MiB cache,
 * the same lock and transaction table sizes; objects.db a 16 KiB-page
 * btree; 8-byte big-endian keys; 100-byte values, byte j of record i being
 * (i*7 + j*31) & 0xff; 100,000 records preloaded for the read benchmarks.
 * Reads copy each key and value into fresh memory, as the Go API returns
 * caller-owned copies.
 *
 *   PutSync        one record per txn, DB_TXN_SYNC
 *   PutNoSync      one record per txn, DB_TXN_NOSYNC
 *   Put100Sync     100 records per txn, DB_TXN_SYNC (ns per txn)
 *   GetWarm        snapshot txn begin, DB->get, abort; random cached keys
 *   Scan100k       one snapshot txn walking every record, DB_NEXT one at a
 *                  time (ns per scan)
 *   Scan100kBulk   the same walk with DB_MULTIPLE_KEY batches in a 128 KiB
 *                  buffer, as the Go cursor does in read transactions
 *   DBGet          DB->get outside any transaction
 *
 * usage: bench DIR [scale]
 * Prints one line per benchmark: "name wall_ns_per_op cpu_ns_per_op".
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#define VALUE 100
#define RECORDS 100000

static void die(const char *what, int rc) {
	fprintf(stderr, "bench: %s: %s\n", what, db_strerror(rc));
	exit(1);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* cpu returns the process's user+system CPU time in ns. */
static double cpu(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static double t0, cpu0;

static void start(void) {
	t0 = now();
	cpu0 = cpu();
}

static void report(const char *name, long n) {
	printf("%s %.0f %.0f\n", name, (now() - t0) / n, (cpu() - cpu0) / n);
	fflush(stdout);
}

static void benchkey(unsigned char *k, uint64_t i) {
	int b;
	for (b = 7; b >= 0; b--) {
		k[b] = (unsigned char)(i & 0xff);
		i >>= 8;
	}
}

static void benchvalue(unsigned char *v, uint64_t i) {
	int j;
	for (j = 0; j < VALUE; j++)
		v[j] = (unsigned char)(i * 7 + (uint64_t)j * 31);
}

typedef struct {
	DB_ENV *env;
	DB *db;
} bench_env;

static bench_env open_env(const char *dir) {
	bench_env b;
	int rc;
	mkdir(dir, 0755);
	if ((rc = db_env_create(&b.env, 0)) != 0)
		die("db_env_create", rc);
	b.env->set_errfile(b.env, stderr);
	if ((rc = b.env->set_cachesize(b.env, 0, 64 << 20, 1)) != 0)
		die("set_cachesize", rc);
	if ((rc = b.env->set_lk_detect(b.env, DB_LOCK_DEFAULT)) != 0)
		die("set_lk_detect", rc);
	b.env->set_lk_max_locks(b.env, 100000);
	b.env->set_lk_max_lockers(b.env, 10000);
	b.env->set_lk_max_objects(b.env, 100000);
	b.env->set_tx_max(b.env, 1024);
	if ((rc = b.env->set_flags(b.env, DB_MULTIVERSION, 1)) != 0)
		die("set_flags", rc);
	b.env->log_set_config(b.env, DB_LOG_AUTO_REMOVE, 0);
	if ((rc = b.env->open(b.env, dir, DB_CREATE | DB_INIT_TXN | DB_INIT_LOG |
	    DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER | DB_REGISTER, 0)) != 0)
		die("DB_ENV->open", rc);
	if ((rc = db_create(&b.db, b.env, 0)) != 0)
		die("db_create", rc);
	b.db->set_pagesize(b.db, 16384);
	if ((rc = b.db->open(b.db, NULL, "objects.db", NULL, DB_BTREE,
	    DB_CREATE | DB_THREAD | DB_AUTO_COMMIT, 0)) != 0)
		die("DB->open", rc);
	return b;
}

static void close_env(bench_env b, const char *dir) {
	char cmd[4096];
	b.db->close(b.db, 0);
	b.env->close(b.env, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: cannot remove %s\n", dir);
}

static void put(bench_env b, DB_TXN *t, uint64_t i) {
	unsigned char k[8], v[VALUE];
	DBT key, val;
	int rc;
	benchkey(k, i);
	benchvalue(v, i);
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = k;
	key.size = 8;
	val.data = v;
	val.size = VALUE;
	if ((rc = b.db->put(b.db, t, &key, &val, 0)) != 0)
		die("DB->put", rc);
}

static void bench_put(const char *dir, const char *name, u_int32_t cflags, int per, long n) {
	bench_env b = open_env(dir);
	DB_TXN *t;
	uint64_t seq = 0;
	long i;
	int j, rc;
	start();
	for (i = 0; i < n; i++) {
		if ((rc = b.env->txn_begin(b.env, NULL, &t, 0)) != 0)
			die("txn_begin", rc);
		for (j = 0; j < per; j++)
			put(b, t, seq++);
		if ((rc = t->commit(t, cflags)) != 0)
			die("commit", rc);
	}
	report(name, n);
	close_env(b, dir);
}

static long scan(bench_env b, int bulk);

/* preloaded: RECORDS records in 10 NoSync txns, a log flush, one scan. */
static bench_env preloaded(const char *dir) {
	bench_env b = open_env(dir);
	DB_TXN *t;
	uint64_t i;
	int rc;
	for (i = 0; i < RECORDS; i++) {
		if (i % 10000 == 0 && (rc = b.env->txn_begin(b.env, NULL, &t, 0)) != 0)
			die("txn_begin", rc);
		put(b, t, i);
		if (i % 10000 == 9999 && (rc = t->commit(t, DB_TXN_NOSYNC)) != 0)
			die("commit", rc);
	}
	if ((rc = b.env->log_flush(b.env, NULL)) != 0)
		die("log_flush", rc);
	if (scan(b, 0) != RECORDS)
		die("preload scan", EINVAL);
	return b;
}

static void *copy(const void *p, u_int32_t n) {
	void *out = malloc(n ? n : 1);
	memcpy(out, p, n);
	return out;
}

/* get reads key i into buf and returns a fresh copy (freed at once). */
static void get(bench_env b, DB_TXN *t, uint64_t i) {
	unsigned char k[8], buf[4096];
	DBT key, val;
	int rc;
	benchkey(k, i);
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = k;
	key.size = 8;
	val.data = buf;
	val.ulen = sizeof(buf);
	val.flags = DB_DBT_USERMEM;
	if ((rc = b.db->get(b.db, t, &key, &val, 0)) != 0)
		die("DB->get", rc);
	if (val.size != VALUE)
		die("DB->get size", EINVAL);
	free(copy(buf, val.size));
}

static void bench_getwarm(const char *dir, long n) {
	bench_env b = preloaded(dir);
	DB_TXN *t;
	long i;
	int rc;
	start();
	for (i = 0; i < n; i++) {
		if ((rc = b.env->txn_begin(b.env, NULL, &t, DB_TXN_SNAPSHOT)) != 0)
			die("txn_begin", rc);
		get(b, t, (uint64_t)((i * 7919) % RECORDS));
		if ((rc = t->abort(t)) != 0)
			die("abort", rc);
	}
	report("GetWarm", n);
	close_env(b, dir);
}

static void bench_dbget(const char *dir, long n) {
	bench_env b = preloaded(dir);
	long i;
	start();
	for (i = 0; i < n; i++)
		get(b, NULL, (uint64_t)((i * 7919) % RECORDS));
	report("DBGet", n);
	close_env(b, dir);
}

/* scan walks every record in one snapshot txn, copying keys and values. */
static long scan(bench_env b, int bulk) {
	static u_int32_t bulkbuf[(128 << 10) / sizeof(u_int32_t)];
	unsigned char kb[256], vb[4096];
	DBT key, val;
	DB_TXN *t;
	DBC *c;
	long n = 0;
	int rc;
	u_int32_t op = DB_FIRST;
	if ((rc = b.env->txn_begin(b.env, NULL, &t, DB_TXN_SNAPSHOT)) != 0)
		die("txn_begin", rc);
	if ((rc = b.db->cursor(b.db, t, &c, 0)) != 0)
		die("DB->cursor", rc);
	for (;;) {
		memset(&key, 0, sizeof(key));
		memset(&val, 0, sizeof(val));
		if (bulk) {
			void *p;
			val.data = bulkbuf;
			val.ulen = sizeof(bulkbuf);
			val.flags = DB_DBT_USERMEM;
			if ((rc = c->get(c, &key, &val, DB_NEXT | DB_MULTIPLE_KEY)) != 0)
				break;
			for (DB_MULTIPLE_INIT(p, &val);;) {
				void *kp, *vp;
				u_int32_t kl, vl;
				DB_MULTIPLE_KEY_NEXT(p, &val, kp, kl, vp, vl);
				if (p == NULL)
					break;
				free(copy(kp, kl));
				free(copy(vp, vl));
				n++;
			}
			continue;
		}
		key.data = kb;
		key.ulen = sizeof(kb);
		key.flags = DB_DBT_USERMEM;
		val.data = vb;
		val.ulen = sizeof(vb);
		val.flags = DB_DBT_USERMEM;
		if ((rc = c->get(c, &key, &val, op)) != 0)
			break;
		op = DB_NEXT;
		free(copy(kb, key.size));
		free(copy(vb, val.size));
		n++;
	}
	if (rc != DB_NOTFOUND)
		die("DBC->get", rc);
	c->close(c);
	t->abort(t);
	return n;
}

static void bench_scan(const char *dir, const char *name, int bulk, long n) {
	bench_env b = preloaded(dir);
	long i;
	start();
	for (i = 0; i < n; i++)
		if (scan(b, bulk) != RECORDS)
			die("scan count", EINVAL);
	report(name, n);
	close_env(b, dir);
}

int main(int argc, char **argv) {
	char dir[4096];
	double scale = 1;
	if (argc < 2) {
		fprintf(stderr, "usage: bench DIR [scale]\n");
		return 2;
	}
	if (argc > 2)
		scale = atof(argv[2]);
	snprintf(dir, sizeof(dir), "%s/c-bench", argv[1]);
#define N(x) ((long)((x) * scale) > 0 ? (long)((x) * scale) : 1)
	bench_put(dir, "PutSync", DB_TXN_SYNC, 1, N(1000));
	bench_put(dir, "PutNoSync", DB_TXN_NOSYNC, 1, N(50000));
	bench_put(dir, "Put100Sync", DB_TXN_SYNC, 100, N(500));
	bench_getwarm(dir, N(300000));
	bench_scan(dir, "Scan100k", 0, N(20));
	bench_scan(dir, "Scan100kBulk", 1, N(20));
	bench_dbget(dir, N(300000));
	return 0;
}
