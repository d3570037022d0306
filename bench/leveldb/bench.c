/*
 * bench.c: the kvtest benchmark shapes (kv/kvtest/bench.go) over
 * libleveldb's C API directly, doing the same LevelDB calls as the Go
 * backend (package leveldb), so that run.sh can print the Go/C ratio, i.e.
 * the cost of levigo, cgo and the kv layer.
 *
 *   PutSync     one record per WriteBatch, sync write
 *   PutNoSync   one record per WriteBatch, non-sync write
 *   Put100Sync  100 records per WriteBatch, sync write
 *   GetWarm     per get: snapshot + read options (verify checksums) + get + release
 *   Scan100k    per scan: snapshot + iterator over prefix 'o', copying each key and value
 *
 * Keys are 'o' + 8-byte big-endian sequence numbers; value byte j of record
 * i is (i*7 + j*31) & 0xff, 100 bytes. Options as leveldb.OpenStore: snappy,
 * paranoid checks, 64 MiB LRU cache, 10-bit bloom filter.
 *
 * usage: bench DIR [seconds-per-shape]   (DIR must exist; subdirectories are created)
 * output: one line per shape: "NAME NS_PER_OP"
 */
#define _POSIX_C_SOURCE 200809L
#include <leveldb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define VALUE_SIZE 100
#define RECORDS 100000

static double seconds = 1.0;

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void check(char *err, const char *what) {
	if (err != NULL) {
		fprintf(stderr, "bench: %s: %s\n", what, err);
		exit(1);
	}
}

static void make_key(uint64_t i, char *k) {
	k[0] = 'o';
	for (int b = 0; b < 8; b++)
		k[1 + b] = (char)(i >> (56 - 8 * b));
}

static void make_value(uint64_t i, char *v) {
	for (int j = 0; j < VALUE_SIZE; j++)
		v[j] = (char)(i * 7 + (uint64_t)j * 31);
}

struct db {
	leveldb_t *db;
	leveldb_options_t *opts;
	leveldb_cache_t *cache;
	leveldb_filterpolicy_t *filter;
};

static struct db open_db(const char *parent, const char *name) {
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", parent, name);
	mkdir(path, 0755);
	struct db d;
	d.opts = leveldb_options_create();
	d.cache = leveldb_cache_create_lru(64 << 20);
	d.filter = leveldb_filterpolicy_create_bloom(10);
	leveldb_options_set_cache(d.opts, d.cache);
	leveldb_options_set_filter_policy(d.opts, d.filter);
	leveldb_options_set_compression(d.opts, leveldb_snappy_compression);
	leveldb_options_set_paranoid_checks(d.opts, 1);
	leveldb_options_set_create_if_missing(d.opts, 1);
	char *err = NULL;
	d.db = leveldb_open(d.opts, path, &err);
	check(err, "open");
	return d;
}

static void close_db(struct db d) {
	leveldb_close(d.db);
	leveldb_options_destroy(d.opts);
	leveldb_filterpolicy_destroy(d.filter);
	leveldb_cache_destroy(d.cache);
}

static void put_shape(const char *dir, const char *name, int per_txn, int sync) {
	struct db d = open_db(dir, name);
	leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(wo, (unsigned char)sync);
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	char k[9], v[VALUE_SIZE];
	uint64_t seq = 0, ops = 0;
	double start = now(), elapsed;
	do {
		for (int n = 0; n < 16; n++) {
			leveldb_writebatch_clear(wb);
			for (int j = 0; j < per_txn; j++) {
				make_key(seq, k);
				make_value(seq, v);
				leveldb_writebatch_put(wb, k, sizeof k, v, sizeof v);
				seq++;
			}
			char *err = NULL;
			leveldb_write(d.db, wo, wb, &err);
			check(err, "write");
			ops++;
		}
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("%s %.0f\n", name, elapsed * 1e9 / (double)ops);
	leveldb_writebatch_destroy(wb);
	leveldb_writeoptions_destroy(wo);
	close_db(d);
}

static long scan(struct db d) {
	const leveldb_snapshot_t *snap = leveldb_create_snapshot(d.db);
	leveldb_readoptions_t *ro = leveldb_readoptions_create();
	leveldb_readoptions_set_verify_checksums(ro, 1);
	leveldb_readoptions_set_snapshot(ro, snap);
	leveldb_iterator_t *it = leveldb_create_iterator(d.db, ro);
	char kbuf[64], vbuf[VALUE_SIZE];
	long n = 0;
	for (leveldb_iter_seek(it, "o", 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t kl, vl;
		const char *k = leveldb_iter_key(it, &kl);
		if (kl < 1 || k[0] != 'o')
			break;
		const char *v = leveldb_iter_value(it, &vl);
		memcpy(kbuf, k, kl < sizeof kbuf ? kl : sizeof kbuf);
		memcpy(vbuf, v, vl < sizeof vbuf ? vl : sizeof vbuf);
		n++;
	}
	char *err = NULL;
	leveldb_iter_get_error(it, &err);
	check(err, "scan");
	leveldb_iter_destroy(it);
	leveldb_readoptions_destroy(ro);
	leveldb_release_snapshot(d.db, snap);
	return n;
}

static void read_shapes(const char *dir) {
	struct db d = open_db(dir, "read");
	leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	char k[9], v[VALUE_SIZE], *err = NULL;
	for (uint64_t start = 0; start < RECORDS; start += 10000) {
		leveldb_writebatch_clear(wb);
		for (uint64_t i = start; i < start + 10000; i++) {
			make_key(i, k);
			make_value(i, v);
			leveldb_writebatch_put(wb, k, sizeof k, v, sizeof v);
		}
		leveldb_write(d.db, wo, wb, &err);
		check(err, "preload");
	}
	leveldb_writebatch_clear(wb);
	leveldb_writeoptions_set_sync(wo, 1);
	leveldb_write(d.db, wo, wb, &err);
	check(err, "flush");
	if (scan(d) != RECORDS) {
		fprintf(stderr, "bench: preload scan count wrong\n");
		exit(1);
	}

	uint64_t ops = 0;
	double start = now(), elapsed;
	do {
		for (int n = 0; n < 256; n++) {
			uint64_t key = (ops * 7919) % RECORDS;
			make_key(key, k);
			const leveldb_snapshot_t *snap = leveldb_create_snapshot(d.db);
			leveldb_readoptions_t *ro = leveldb_readoptions_create();
			leveldb_readoptions_set_verify_checksums(ro, 1);
			leveldb_readoptions_set_snapshot(ro, snap);
			size_t vl;
			char *val = leveldb_get(d.db, ro, k, sizeof k, &vl, &err);
			check(err, "get");
			if (val == NULL || vl != VALUE_SIZE) {
				fprintf(stderr, "bench: get %llu: bad value\n", (unsigned long long)key);
				exit(1);
			}
			leveldb_free(val);
			leveldb_readoptions_destroy(ro);
			leveldb_release_snapshot(d.db, snap);
			ops++;
		}
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("GetWarm %.0f\n", elapsed * 1e9 / (double)ops);

	ops = 0;
	start = now();
	do {
		if (scan(d) != RECORDS) {
			fprintf(stderr, "bench: scan count wrong\n");
			exit(1);
		}
		ops++;
		elapsed = now() - start;
	} while (elapsed < seconds);
	printf("Scan100k %.0f\n", elapsed * 1e9 / (double)ops);

	leveldb_writebatch_destroy(wb);
	leveldb_writeoptions_destroy(wo);
	close_db(d);
}

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: bench DIR [seconds-per-shape]\n");
		return 2;
	}
	if (argc > 2)
		seconds = atof(argv[2]);
	put_shape(argv[1], "PutSync", 1, 1);
	put_shape(argv[1], "PutNoSync", 1, 0);
	put_shape(argv[1], "Put100Sync", 100, 1);
	read_shapes(argv[1]);
	return 0;
}
