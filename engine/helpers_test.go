package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// forEachBackend runs fn as a subtest per compiled backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, kind string)) {
	t.Helper()
	kinds := backend.Compiled()
	if len(kinds) == 0 {
		t.Fatal("no backend compiled in")
	}
	for _, k := range kinds {
		t.Run(k, func(t *testing.T) { fn(t, k) })
	}
}

// testOpts are deterministic defaults for tests: manual GC and checkpoints.
func testOpts(kind string) Options {
	return Options{
		Create:     true,
		Backend:    kind,
		GC:         GCPolicy{Mode: GCManual},
		Checkpoint: CheckpointPolicy{Manual: true},
		CacheSize:  8 << 20,
	}
}

func openTest(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newTestDB(t testing.TB, kind string) *DB {
	t.Helper()
	return openTest(t, t.TempDir(), testOpts(kind))
}

// rec builds a record with data "d<oid>" and the given refs.
func rec(oid uint64, refs ...uint64) []byte {
	return record.Build(oid, fmt.Appendf(nil, "d%d", oid), refs...)
}

func mustAlloc(t testing.TB, db *DB, n int) uint64 {
	t.Helper()
	first, err := db.AllocOIDs(n)
	if err != nil {
		t.Fatal(err)
	}
	return first
}

func mustCommit(t testing.TB, db *DB, recs ...[]byte) {
	t.Helper()
	p, err := db.Commit(context.Background(), recs)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatalf("wait: %v", err)
	}
}

// dump reads a whole bucket through kv.
func dump(t testing.TB, db *DB, bucket string) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	err := kv.View(context.Background(), db.store, func(tx kv.Txn) error {
		c, err := tx.Cursor(bucket)
		if err != nil {
			return err
		}
		defer c.Close()
		for ok := c.First(); ok; ok = c.Next() {
			out[record.OID(c.Key())] = c.Value()
		}
		return c.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func metaGet(t testing.TB, db *DB, key string) ([]byte, bool) {
	t.Helper()
	var v []byte
	err := kv.View(context.Background(), db.store, func(tx kv.Txn) error {
		var err error
		v, err = tx.Get(BucketMeta, []byte(key))
		return err
	})
	if errors.Is(err, kv.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// verifyInvariants checks FORMAT.md §4 independently of Check: counts ==
// in-degrees over stored records, garbage == zero-count stored non-root
// oids, size == record count.
func verifyInvariants(t testing.TB, db *DB) {
	t.Helper()
	objs := dump(t, db, BucketObjects)
	indeg := map[uint64]uint32{}
	for oid, v := range objs {
		r, err := record.ParseFor(oid, v)
		if err != nil {
			t.Fatalf("stored oid %d: %v", oid, err)
		}
		for _, ref := range r.RefSet() {
			indeg[ref]++
		}
	}
	counts := dump(t, db, BucketRefcounts)
	for oid, v := range counts {
		if got, want := record.OID(append(make([]byte, 4), v...)), uint64(indeg[oid]); got != want || want == 0 {
			t.Errorf("refcount oid %d = %d, in-degree %d", oid, got, want)
		}
	}
	for oid, n := range indeg {
		if _, ok := counts[oid]; !ok {
			t.Errorf("oid %d has in-degree %d but no refcount entry", oid, n)
		}
	}
	garbage := dump(t, db, BucketGarbage)
	for oid := range objs {
		_, queued := garbage[oid]
		want := oid != 0 && indeg[oid] == 0
		if queued != want {
			t.Errorf("oid %d: queued %v, want %v (in-degree %d)", oid, queued, want, indeg[oid])
		}
	}
	for oid := range garbage {
		if _, ok := objs[oid]; !ok {
			t.Errorf("garbage holds oid %d without a record", oid)
		}
	}
	if n, _ := db.Size(); n != uint64(len(objs)) {
		t.Errorf("Size() = %d, records %d", n, len(objs))
	}
	v, _ := metaGet(t, db, MetaSize)
	if got := record.OID(v); got != uint64(len(objs)) {
		t.Errorf("meta size = %d, records %d", got, len(objs))
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	return slices.Sorted(maps.Keys(m))
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
