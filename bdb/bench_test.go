//go:build bdb

package bdb_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// Benchmark parameters, mirrored by bench/libdb/bench.c: 8-byte big-endian
// keys, 512-byte values, objects.db as a 16 KiB-page btree in an
// environment opened with FORMAT.md's flags and a 64 MiB cache.
const (
	benchValue   = 512
	benchPreload = 20000
)

func benchEnv(b *testing.B) (*bdb.Env, *bdb.DB) {
	b.Helper()
	e, err := bdb.OpenEnv(b.TempDir(), bdb.EnvOptions{})
	if err != nil {
		b.Fatal(err)
	}
	d, err := e.OpenDB("objects.db", bdb.DBOptions{Create: true, PageSize: 16384})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e, d
}

func benchPut(b *testing.B, d kv.Durability, perTxn int) {
	e, db := benchEnv(b)
	val := make([]byte, benchValue)
	var key [8]byte
	b.SetBytes(benchValue)
	b.ResetTimer()
	for i := 0; i < b.N; {
		tx, err := e.Begin(bdb.TxnOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < perTxn && i < b.N; j, i = j+1, i+1 {
			binary.BigEndian.PutUint64(key[:], uint64(i))
			if err := db.Put(tx, key[:], val); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutSync: one put per transaction, committed with DB_TXN_SYNC.
func BenchmarkPutSync(b *testing.B) { benchPut(b, kv.Sync, 1) }

// BenchmarkPutNoSync: one put per transaction, DB_TXN_NOSYNC.
func BenchmarkPutNoSync(b *testing.B) { benchPut(b, kv.NoSync, 1) }

// BenchmarkPut100: 100 puts per transaction (DB_TXN_NOSYNC); ns per put.
func BenchmarkPut100(b *testing.B) { benchPut(b, kv.NoSync, 100) }

func preload(b *testing.B, e *bdb.Env, db *bdb.DB) {
	b.Helper()
	val := make([]byte, benchValue)
	var key [8]byte
	tx, _ := e.Begin(bdb.TxnOptions{})
	for i := 0; i < benchPreload; i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		if err := db.Put(tx, key[:], val); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(kv.NoSync); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkGet: DB->get outside a transaction of random preloaded keys,
// all in cache.
func BenchmarkGet(b *testing.B) {
	e, db := benchEnv(b)
	preload(b, e, db)
	var key [8]byte
	b.SetBytes(benchValue)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i*7919)%benchPreload)
		if _, err := db.Get(nil, key[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCursorScan: a snapshot transaction's cursor walking the
// preloaded records; ns per record.
func BenchmarkCursorScan(b *testing.B) {
	e, db := benchEnv(b)
	preload(b, e, db)
	b.SetBytes(benchValue)
	b.ResetTimer()
	for n := 0; n < b.N; {
		tx, err := e.Begin(bdb.TxnOptions{Snapshot: true})
		if err != nil {
			b.Fatal(err)
		}
		c, err := db.Cursor(tx)
		if err != nil {
			b.Fatal(err)
		}
		for _, _, err = c.First(); err == nil && n < b.N; _, _, err = c.Next() {
			n++
		}
		c.Close()
		tx.Abort()
	}
}

// BenchmarkStoreGet: kv.View with one Get (snapshot transaction begin, get,
// abort), the engine's Load path.
func BenchmarkStoreGet(b *testing.B) {
	s, err := bdb.OpenStore(kvtest.Options(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	preload(b, s.Env(), s.DB(kvtest.Objects))
	ctx := context.Background()
	var key [8]byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i*7919)%benchPreload)
		tx, err := s.Begin(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Get(kvtest.Objects, key[:]); err != nil {
			b.Fatal(err)
		}
		tx.Abort()
	}
}

// BenchmarkStorePutNoSync: kv transaction with one Put, committed NoSync.
func BenchmarkStorePutNoSync(b *testing.B) {
	s, err := bdb.OpenStore(kvtest.Options(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	val := make([]byte, benchValue)
	var key [8]byte
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		tx, err := s.Begin(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Put(kvtest.Objects, key[:], val); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(kv.NoSync); err != nil {
			b.Fatal(err)
		}
	}
}
