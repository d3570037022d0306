package kvtest

import (
	"encoding/binary"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// Benchmark shapes shared by every backend (and mirrored by the C programs
// under bench/ that measure the bare libraries):
//
//	PutSync        one 100-byte record per write txn, committed with kv.Sync
//	PutNoSync      one record per write txn, kv.NoSync
//	Put100Sync     100 records per write txn, kv.Sync (ns/rec also reported)
//	GetWarm        one Get per read txn, random keys of 100,000 records, all cached
//	Scan100k       one read txn walking all 100,000 records with a cursor,
//	               reading each key and value (ns/rec also reported)
//
// Keys are 8-byte big-endian sequence numbers in the objects bucket; the
// value of record i is BenchValue(i).
const (
	// BenchValueSize is the value size of every benchmark record.
	BenchValueSize = 100
	// BenchRecords is the number of records preloaded for GetWarm and Scan100k.
	BenchRecords = 100_000
)

// BenchValue returns the value of benchmark record i: byte j is
// byte(i*7 + j*31). The C benchmarks compute the same bytes.
func BenchValue(i uint64, buf []byte) []byte {
	buf = buf[:0]
	for j := 0; j < BenchValueSize; j++ {
		buf = append(buf, byte(i*7+uint64(j)*31))
	}
	return buf
}

// BenchKey returns the 8-byte big-endian key of record i.
func BenchKey(i uint64, buf []byte) []byte {
	return binary.BigEndian.AppendUint64(buf[:0], i)
}

// benchOptions are Options(dir) with the default cache size (64 MiB).
func benchOptions(dir string) kv.Options {
	o := Options(dir)
	o.CacheSize = 0
	return o
}

// RunBenchmarks runs the shared benchmark shapes against the backend that
// open opens. Each shape is a sub-benchmark; call it from a Benchmark
// function:
//
//	func BenchmarkKV(b *testing.B) { kvtest.RunBenchmarks(b, openStore) }
func RunBenchmarks(b *testing.B, open Opener) {
	b.Run("PutSync", func(b *testing.B) { benchPut(b, open, 1, kv.Sync) })
	b.Run("PutNoSync", func(b *testing.B) { benchPut(b, open, 1, kv.NoSync) })
	b.Run("Put100Sync", func(b *testing.B) { benchPut(b, open, 100, kv.Sync) })

	s := open(b, benchOptions(b.TempDir()))
	defer s.Close()
	preload(b, s)
	b.Run("GetWarm", func(b *testing.B) { benchGet(b, s) })
	b.Run("Scan100k", func(b *testing.B) { benchScan(b, s) })
}

func benchPut(b *testing.B, open Opener, perTxn int, d kv.Durability) {
	s := open(b, benchOptions(b.TempDir()))
	defer s.Close()
	ctx := b.Context()
	var kb [8]byte
	vb := make([]byte, 0, BenchValueSize)
	seq := uint64(0)
	b.SetBytes(int64(perTxn * BenchValueSize))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := s.Begin(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < perTxn; j++ {
			if err := tx.Put(Objects, BenchKey(seq, kb[:]), BenchValue(seq, vb)); err != nil {
				b.Fatal(err)
			}
			seq++
		}
		if err := tx.Commit(d); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if perTxn > 1 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(seq), "ns/rec")
	}
}

// preload stores BenchRecords records, flushes, and reads them all once so
// that the cache is warm.
func preload(b *testing.B, s kv.Store) {
	ctx := b.Context()
	var kb [8]byte
	vb := make([]byte, 0, BenchValueSize)
	for start := uint64(0); start < BenchRecords; start += 10_000 {
		err := kv.Update(ctx, s, kv.NoSync, func(tx kv.Txn) error {
			for i := start; i < start+10_000; i++ {
				if err := tx.Put(Objects, BenchKey(i, kb[:]), BenchValue(i, vb)); err != nil {
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
	if n := scanAll(b, s); n != BenchRecords {
		b.Fatalf("preload: scan saw %d records, want %d", n, BenchRecords)
	}
}

func scanAll(b *testing.B, s kv.Store) int {
	tx, err := s.Begin(b.Context(), false)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Abort()
	c, err := tx.Cursor(Objects)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	n := 0
	for ok := c.First(); ok; ok = c.Next() {
		if len(c.Key()) != 8 || len(c.Value()) != BenchValueSize {
			b.Fatalf("scan: record %d has a %d-byte key", n, len(c.Key()))
		}
		n++
	}
	if err := c.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

func benchGet(b *testing.B, s kv.Store) {
	ctx := b.Context()
	var kb [8]byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := uint64(i*7919) % BenchRecords
		tx, err := s.Begin(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		v, err := tx.Get(Objects, BenchKey(k, kb[:]))
		if err != nil || len(v) != BenchValueSize {
			b.Fatalf("get %d: %d bytes, %v", k, len(v), err)
		}
		tx.Abort()
	}
}

func benchScan(b *testing.B, s kv.Store) {
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := scanAll(b, s); n != BenchRecords {
			b.Fatalf("scan saw %d records", n)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BenchRecords), "ns/rec")
}
