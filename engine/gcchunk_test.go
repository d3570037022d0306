package engine

import (
	"context"
	"sync"
	"testing"
)

// TestCollectorChunksUnderWriteMu checks that the reference-count
// collector deletes at most gcLockChunk objects per transaction (one
// writeMu hold), however large its batch: a batch of 256 under one hold
// stalled commits for 72–170 ms at 1M objects. OnRemove is called once per
// deleting transaction, under writeMu.
func TestCollectorChunksUnderWriteMu(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var mu sync.Mutex
		var sizes []int
		opts := testOpts(kind)
		opts.GCGrace = -1
		opts.OnRemove = func(oids []uint64) {
			mu.Lock()
			sizes = append(sizes, len(oids))
			mu.Unlock()
		}
		db := openTest(t, t.TempDir(), opts)
		const n = 300
		mustAlloc(t, db, n+1)
		recs := [][]byte{rec(0)}
		for oid := uint64(1); oid <= n; oid++ {
			recs = append(recs, rec(oid)) // nothing refers to them: garbage
		}
		mustCommit(t, db, recs...)
		got, err := db.CollectGarbageGrace(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("collector removed %d objects, want %d", got, n)
		}
		mu.Lock()
		defer mu.Unlock()
		total := 0
		for _, k := range sizes {
			total += k
			if k > gcLockChunk {
				t.Errorf("one transaction removed %d objects under writeMu, want at most %d (all: %v)", k, gcLockChunk, sizes)
				break
			}
		}
		if total != n {
			t.Errorf("OnRemove reported %d objects, want %d", total, n)
		}
	})
}
