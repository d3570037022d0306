//go:build bdb

package bdb_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// BenchmarkKV runs the project's shared benchmark shapes (kv/kvtest) on
// the Store.
func BenchmarkKV(b *testing.B) { kvtest.RunBenchmarks(b, openStore) }

// The benchmarks below are the same shapes (kvtest.BenchValue records of
// 100 bytes, 8-byte big-endian keys, objects.db a 16 KiB-page btree, 64 MiB
// cache, 100,000 preloaded records for GetWarm and Scan100k) with one more
// metric, the CPU time per op, for bench/libdb/run.sh, which compares them
// with bench/libdb/bench.c doing the same through libdb directly.

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPU resets the timer and returns a func that stops it and reports
// the CPU time per op of every thread (libdb, cgo, Go GC) as "cpu-ns/op",
// which other load on the machine disturbs less than wall time.
func startCPU(b *testing.B) func() {
	b.ResetTimer()
	t0 := cpuTime()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-t0)/float64(b.N), "cpu-ns/op")
	}
}

// benchStore opens a store with kvtest's buckets and the default cache.
func benchStore(b *testing.B) *bdb.Store {
	b.Helper()
	o := kvtest.Options(b.TempDir())
	o.CacheSize = 0
	s, err := bdb.OpenStore(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchPut(b *testing.B, perTxn int, d kv.Durability) {
	s := benchStore(b)
	ctx := context.Background()
	var kb [8]byte
	vb := make([]byte, 0, kvtest.BenchValueSize)
	seq := uint64(0)
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		tx, err := s.Begin(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < perTxn; j++ {
			if err := tx.Put(kvtest.Objects, kvtest.BenchKey(seq, kb[:]), kvtest.BenchValue(seq, vb)); err != nil {
				b.Fatal(err)
			}
			seq++
		}
		if err := tx.Commit(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutSync: one record per transaction, committed with kv.Sync.
func BenchmarkPutSync(b *testing.B) { benchPut(b, 1, kv.Sync) }

// BenchmarkPutNoSync: one record per transaction, kv.NoSync.
func BenchmarkPutNoSync(b *testing.B) { benchPut(b, 1, kv.NoSync) }

// BenchmarkPut100Sync: 100 records per transaction, kv.Sync; ns per txn.
func BenchmarkPut100Sync(b *testing.B) { benchPut(b, 100, kv.Sync) }

// preloaded returns a store holding kvtest.BenchRecords records, all read
// once so that the cache is warm.
func preloaded(b *testing.B) *bdb.Store {
	s := benchStore(b)
	ctx := context.Background()
	var kb [8]byte
	vb := make([]byte, 0, kvtest.BenchValueSize)
	for start := uint64(0); start < kvtest.BenchRecords; start += 10_000 {
		err := kv.Update(ctx, s, kv.NoSync, func(tx kv.Txn) error {
			for i := start; i < start+10_000; i++ {
				if err := tx.Put(kvtest.Objects, kvtest.BenchKey(i, kb[:]), kvtest.BenchValue(i, vb)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		b.Fatal(err)
	}
	scan(b, s)
	return s
}

func scan(b *testing.B, s *bdb.Store) {
	tx, err := s.Begin(context.Background(), false)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Abort()
	c, err := tx.Cursor(kvtest.Objects)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n := 0
	for ok := c.First(); ok; ok = c.Next() {
		if len(c.Key()) != 8 || len(c.Value()) != kvtest.BenchValueSize {
			b.Fatalf("scan: bad record %d", n)
		}
		n++
	}
	if err := c.Err(); err != nil || n != kvtest.BenchRecords {
		b.Fatalf("scan saw %d records: %v", n, err)
	}
}

// BenchmarkGetWarm: one Get per read (snapshot) transaction, random keys,
// all cached: the engine's Load path.
func BenchmarkGetWarm(b *testing.B) {
	s := preloaded(b)
	ctx := context.Background()
	var kb [8]byte
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		k := uint64(i*7919) % kvtest.BenchRecords
		tx, err := s.Begin(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		v, err := tx.Get(kvtest.Objects, kvtest.BenchKey(k, kb[:]))
		if err != nil || len(v) != kvtest.BenchValueSize {
			b.Fatalf("get %d: %d bytes, %v", k, len(v), err)
		}
		tx.Abort()
	}
}

// BenchmarkScan100k: one read transaction walking all records with a
// cursor, copying each key and value; ns per scan (and per record).
func BenchmarkScan100k(b *testing.B) {
	s := preloaded(b)
	stop := startCPU(b)
	for i := 0; i < b.N; i++ {
		scan(b, s)
	}
	stop()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*kvtest.BenchRecords), "ns/rec")
}

// BenchmarkDBGet: bdb.DB.Get outside any transaction (the binding's
// shortest path), random keys, all cached.
func BenchmarkDBGet(b *testing.B) {
	s := preloaded(b)
	db := s.DB(kvtest.Objects)
	var kb [8]byte
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		k := uint64(i*7919) % kvtest.BenchRecords
		if v, err := db.Get(nil, kvtest.BenchKey(k, kb[:])); err != nil || len(v) != kvtest.BenchValueSize {
			b.Fatalf("get %d: %v", k, err)
		}
	}
}

// BenchmarkStoreGet: Store.Get (kv.Getter, the engine's load path outside
// a transaction), random keys, all cached; it includes the acquire and
// release of the bucket handle set.
func BenchmarkStoreGet(b *testing.B) {
	s := preloaded(b)
	var kb [8]byte
	defer startCPU(b)()
	for i := 0; i < b.N; i++ {
		k := uint64(i*7919) % kvtest.BenchRecords
		if v, err := s.Get(kvtest.Objects, kvtest.BenchKey(k, kb[:])); err != nil || len(v) != kvtest.BenchValueSize {
			b.Fatalf("get %d: %v", k, err)
		}
	}
}
