/*
 * bench.c: the bdb package's benchmarks (bdb/bench_test.go) done through
 * libdb directly, for the Go/C ratio that run.sh prints. Same environment
 * flags as bdb.OpenEnv (FORMAT.md §1: DB_CREATE | DB_INIT_TXN |
 * DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER |
 * DB_REGISTER, DB_LOCK_DEFAULT, DB_MULTIVERSION, 64 MiB cache, same lock
 * and transaction table sizes), objects.db a 16 KiB-page btree, 8-byte
 * big-endian keys, 512-byte values.
 *
 * usage: bench DIR [ops-scale]
 * Prints one line per benchmark: "name ns_per_op".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <db.h>

#define VALUE 512
#define PRELOAD 20000

static void die(const char *what, int rc) {
	fprintf(stderr, "bench: %s: %s\n", what, db_strerror(rc));
	exit(1);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void putkey(unsigned char *k, uint64_t i) {
	int b;
	for (b = 7; b >= 0; b--) {
		k[b] = (unsigned char)(i & 0xff);
		i >>= 8;
	}
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

static void close_env(bench_env b) {
	b.db->close(b.db, 0);
	b.env->close(b.env, 0);
}

static void rmdir_all(const char *dir) {
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: cannot remove %s\n", dir);
}

static void report(const char *name, double ns, long n) {
	printf("%s %.0f\n", name, ns / n);
	fflush(stdout);
}

static void bench_put(const char *dir, const char *name, u_int32_t cflags, int per, long n) {
	bench_env b = open_env(dir);
	unsigned char k[8], v[VALUE];
	DBT key, val;
	DB_TXN *t;
	long i = 0;
	int j, rc;
	double t0;
	memset(v, 0, sizeof(v));
	t0 = now();
	while (i < n) {
		if ((rc = b.env->txn_begin(b.env, NULL, &t, 0)) != 0)
			die("txn_begin", rc);
		for (j = 0; j < per && i < n; j++, i++) {
			putkey(k, (uint64_t)i);
			memset(&key, 0, sizeof(key));
			memset(&val, 0, sizeof(val));
			key.data = k;
			key.size = 8;
			val.data = v;
			val.size = VALUE;
			if ((rc = b.db->put(b.db, t, &key, &val, 0)) != 0)
				die("DB->put", rc);
		}
		if ((rc = t->commit(t, cflags)) != 0)
			die("commit", rc);
	}
	report(name, now() - t0, n);
	close_env(b);
	rmdir_all(dir);
}

static void preload(bench_env b) {
	unsigned char k[8], v[VALUE];
	DBT key, val;
	DB_TXN *t;
	int i, rc;
	memset(v, 0, sizeof(v));
	if ((rc = b.env->txn_begin(b.env, NULL, &t, 0)) != 0)
		die("txn_begin", rc);
	for (i = 0; i < PRELOAD; i++) {
		putkey(k, (uint64_t)i);
		memset(&key, 0, sizeof(key));
		memset(&val, 0, sizeof(val));
		key.data = k;
		key.size = 8;
		val.data = v;
		val.size = VALUE;
		if ((rc = b.db->put(b.db, t, &key, &val, 0)) != 0)
			die("DB->put", rc);
	}
	if ((rc = t->commit(t, DB_TXN_NOSYNC)) != 0)
		die("commit", rc);
}

/* Get: DB->get outside a transaction into a user buffer, then a copy into
 * a fresh allocation, as the Go side returns a caller-owned copy. */
static void bench_get(const char *dir, long n) {
	bench_env b = open_env(dir);
	unsigned char k[8], buf[4096];
	DBT key, val;
	long i;
	int rc;
	double t0;
	preload(b);
	t0 = now();
	for (i = 0; i < n; i++) {
		char *out;
		putkey(k, (uint64_t)((i * 7919) % PRELOAD));
		memset(&key, 0, sizeof(key));
		memset(&val, 0, sizeof(val));
		key.data = k;
		key.size = 8;
		val.data = buf;
		val.ulen = sizeof(buf);
		val.flags = DB_DBT_USERMEM;
		if ((rc = b.db->get(b.db, NULL, &key, &val, 0)) != 0)
			die("DB->get", rc);
		out = malloc(val.size);
		memcpy(out, buf, val.size);
		free(out);
	}
	report("Get", now() - t0, n);
	close_env(b);
	rmdir_all(dir);
}

/* ViewGet: a snapshot transaction per get (begin, DB->get, abort), the
 * engine's Load path; matches BenchmarkStoreGet. */
static void bench_viewget(const char *dir, long n) {
	bench_env b = open_env(dir);
	unsigned char k[8], buf[4096];
	DBT key, val;
	DB_TXN *t;
	long i;
	int rc;
	double t0;
	preload(b);
	t0 = now();
	for (i = 0; i < n; i++) {
		char *out;
		putkey(k, (uint64_t)((i * 7919) % PRELOAD));
		if ((rc = b.env->txn_begin(b.env, NULL, &t, DB_TXN_SNAPSHOT)) != 0)
			die("txn_begin", rc);
		memset(&key, 0, sizeof(key));
		memset(&val, 0, sizeof(val));
		key.data = k;
		key.size = 8;
		val.data = buf;
		val.ulen = sizeof(buf);
		val.flags = DB_DBT_USERMEM;
		if ((rc = b.db->get(b.db, t, &key, &val, 0)) != 0)
			die("DB->get", rc);
		out = malloc(val.size);
		memcpy(out, buf, val.size);
		free(out);
		if ((rc = t->abort(t)) != 0)
			die("abort", rc);
	}
	report("StoreGet", now() - t0, n);
	close_env(b);
	rmdir_all(dir);
}

static void bench_scan(const char *dir, long n) {
	bench_env b = open_env(dir);
	unsigned char kb[256], vb[4096];
	DBT key, val;
	DB_TXN *t;
	DBC *c;
	long i = 0;
	int rc;
	u_int32_t op;
	double t0;
	preload(b);
	t0 = now();
	while (i < n) {
		if ((rc = b.env->txn_begin(b.env, NULL, &t, DB_TXN_SNAPSHOT)) != 0)
			die("txn_begin", rc);
		if ((rc = b.db->cursor(b.db, t, &c, 0)) != 0)
			die("DB->cursor", rc);
		for (op = DB_FIRST; i < n; op = DB_NEXT, i++) {
			char *ko, *vo;
			memset(&key, 0, sizeof(key));
			memset(&val, 0, sizeof(val));
			key.data = kb;
			key.ulen = sizeof(kb);
			key.flags = DB_DBT_USERMEM;
			val.data = vb;
			val.ulen = sizeof(vb);
			val.flags = DB_DBT_USERMEM;
			if ((rc = c->get(c, &key, &val, op)) != 0) {
				if (rc == DB_NOTFOUND)
					break;
				die("DBC->get", rc);
			}
			ko = malloc(key.size);
			memcpy(ko, kb, key.size);
			vo = malloc(val.size);
			memcpy(vo, vb, val.size);
			free(ko);
			free(vo);
		}
		c->close(c);
		t->abort(t);
	}
	report("CursorScan", now() - t0, n);
	close_env(b);
	rmdir_all(dir);
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
	bench_put(dir, "PutSync", DB_TXN_SYNC, 1, (long)(1500 * scale));
	bench_put(dir, "PutNoSync", DB_TXN_NOSYNC, 1, (long)(60000 * scale));
	bench_put(dir, "Put100", DB_TXN_NOSYNC, 100, (long)(120000 * scale));
	bench_get(dir, (long)(500000 * scale));
	bench_scan(dir, (long)(700000 * scale));
	bench_viewget(dir, (long)(100000 * scale));
	return 0;
}
