package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// removedLog collects OnRemove reports.
type removedLog struct {
	mu   sync.Mutex
	oids []uint64
}

func (r *removedLog) add(o []uint64) {
	r.mu.Lock()
	r.oids = append(r.oids, o...)
	r.mu.Unlock()
}

func (r *removedLog) sorted() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(slices.Values(r.oids))
}

func TestCollectorGraceAndCascade(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var rl removedLog
		o := testOpts(kind)
		o.GCGrace = 300 * time.Millisecond
		o.OnRemove = rl.add
		db := openTest(t, t.TempDir(), o)
		ctx := context.Background()
		mustAlloc(t, db, 10)
		// Chain 0 -> 1 -> 2 -> 3, and 4 stored with no referrer.
		mustCommit(t, db, rec(0, 1), rec(1, 2), rec(2, 3), rec(3), rec(4))
		// Within grace: nothing goes.
		if n, err := db.CollectGarbage(ctx, 0); err != nil || n != 0 {
			t.Fatalf("collect within grace: %d %v", n, err)
		}
		if _, err := db.Load(4); err != nil {
			t.Fatal("unreferenced object gone within grace")
		}
		// Link 4 from the root: it leaves the queue.
		mustCommit(t, db, rec(0, 1, 4))
		if g := dump(t, db, BucketGarbage); len(g) != 0 {
			t.Fatalf("queue %v after linking", sortedKeys(g))
		}
		// Unlink the chain.
		mustCommit(t, db, rec(0, 4))
		verifyInvariants(t, db)
		// Not a wait for an event: the grace period has to pass.
		time.Sleep(350 * time.Millisecond)
		n, err := db.CollectGarbage(ctx, 0)
		if err != nil || n != 3 {
			t.Fatalf("collect after grace: %d %v (want the chain 1,2,3)", n, err)
		}
		if got := rl.sorted(); !slices.Equal(got, []uint64{1, 2, 3}) {
			t.Fatalf("OnRemove got %v", got)
		}
		for _, oid := range []uint64{1, 2, 3} {
			if _, err := db.Load(oid); !errors.Is(err, ErrNotFound) {
				t.Fatalf("oid %d still there: %v", oid, err)
			}
		}
		verifyInvariants(t, db)
		st, _ := db.Stats()
		if st.GCFreed != 3 || st.GCCollections == 0 {
			t.Fatalf("gc progress %+v", st)
		}
		if v, _ := metaGet(t, db, MetaGC); len(v) != 16 || record.OID(v[8:]) != 3 {
			t.Fatalf("meta gc %x", v)
		}
		// A dangling commit to a collected oid is refused (I).
		if _, err := db.Commit(ctx, [][]byte{rec(0, 2)}); !errors.Is(err, ErrDangling) {
			t.Fatalf("ref to collected oid: %v", err)
		}
		// Root is never collected, even with no referrer.
		if _, err := db.CollectGarbageGrace(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Load(0); err != nil {
			t.Fatal("root collected")
		}
	})
}

func TestCollectorCycleSurvives(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		mustAlloc(t, db, 10)
		mustCommit(t, db, rec(0, 1), rec(1, 2), rec(2, 1))
		mustCommit(t, db, rec(0))
		if n, err := db.CollectGarbageGrace(ctx, 0, 0); err != nil || n != 0 {
			t.Fatalf("refcount collector removed %d of a cycle (%v)", n, err)
		}
		st, err := db.FullCollect(ctx)
		if err != nil || st.Removed != 2 {
			t.Fatalf("full collect %+v %v", st, err)
		}
		verifyInvariants(t, db)
	})
}

func TestCollectorResumesAfterRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		o := testOpts(kind)
		o.GCGrace = -1
		db := openTest(t, dir, o)
		ctx := context.Background()
		mustAlloc(t, db, 100)
		var recs [][]byte
		refs := []uint64{}
		for i := uint64(1); i < 60; i++ {
			recs = append(recs, rec(i))
			refs = append(refs, i)
		}
		recs = append(recs, rec(0, refs...))
		mustCommit(t, db, recs...)
		mustCommit(t, db, rec(0))
		if n, err := db.CollectGarbage(ctx, 10); err != nil || n != 10 {
			t.Fatalf("partial pass %d %v", n, err)
		}
		db.Close()
		var rl removedLog
		o.OnRemove = rl.add
		o.GC = GCPolicy{Mode: GCContinuous, Rate: 1000}
		db = openTest(t, dir, o)
		testwait.For(t, "the background collector to leave the root only", func() bool {
			n, _ := db.Size()
			return n == 1
		})
		if len(rl.sorted()) != 49 {
			t.Fatalf("reported %d removals after restart, want 49", len(rl.sorted()))
		}
		verifyInvariants(t, db)
	})
}

func TestCollectorIdlePolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		o := testOpts(kind)
		o.GCGrace = -1
		o.GC = GCPolicy{Mode: GCIdle, Idle: 400 * time.Millisecond}
		db := openTest(t, t.TempDir(), o)
		mustAlloc(t, db, 5)
		start := time.Now()
		mustCommit(t, db, rec(0), rec(1))
		// One-sided, so a slow machine cannot fail it: oid 1 gone while
		// the last commit is younger than Idle shows a collection that
		// did not wait for the quiet time.
		testwait.For(t, "the idle collector to remove oid 1", func() bool {
			_, err := db.Load(1)
			if err == nil {
				return false
			}
			if !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			if el := time.Since(start); el < o.GC.Idle {
				t.Fatalf("idle collector ran %v after a commit (idle %v)", el, o.GC.Idle)
			}
			return true
		})
	})
}

func TestValidateGarbage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		o := testOpts(kind)
		o.ValidateGarbage = true
		db := openTest(t, t.TempDir(), o)
		ctx := context.Background()
		mustAlloc(t, db, 5)
		mustCommit(t, db, rec(0, 1), rec(1), rec(2, 1))
		// Corrupt: queue oid 1 although its count is 2.
		if err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			return tx.Put(BucketGarbage, record.OIDBytes(1), int8Bytes(0))
		}); err != nil {
			t.Fatal(err)
		}
		_, err := db.CollectGarbageGrace(ctx, 0, 0)
		if !errors.Is(err, ErrGarbageInvalid) {
			t.Fatalf("validate: %v", err)
		}
		for _, oid := range []uint64{1, 2} {
			if _, err := db.Load(oid); err != nil {
				t.Fatalf("oid %d deleted despite failed validation", oid)
			}
		}
	})
}
