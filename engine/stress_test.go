package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStress runs committers, loaders, the background collector and
// repeated full collections together, then checks every invariant.
func TestStress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		o := testOpts(kind)
		o.GCGrace = -1
		o.GC = GCPolicy{Mode: GCContinuous, Rate: 100000, Batch: 32}
		var removed atomic.Int64
		o.OnRemove = func(oids []uint64) { removed.Add(int64(len(oids))) }
		db := openTest(t, t.TempDir(), o)
		ctx := context.Background()
		mustAlloc(t, db, 1)
		mustCommit(t, db, rec(0))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var commits, refused atomic.Int64
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 1))
				var mine []uint64
				for i := 0; i < 300; i++ {
					select {
					case <-stop:
						return
					default:
					}
					first, err := db.AllocOIDs(3)
					if err != nil {
						t.Error(err)
						return
					}
					recs := [][]byte{rec(first, first+1), rec(first+1, first+2), rec(first + 2)}
					if len(mine) > 0 && r.IntN(2) == 0 {
						// Link something older (may be collected: conflict).
						recs[2] = rec(first+2, mine[r.IntN(len(mine))])
					}
					if r.IntN(3) == 0 {
						recs = append(recs, rec(0, first)) // the root holds the newest chain
					}
					p, err := db.Commit(ctx, recs)
					if errors.Is(err, ErrDangling) {
						refused.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					if err := p.Wait(ctx); err != nil {
						t.Error(err)
						return
					}
					commits.Add(1)
					mine = append(mine, first, first+1)
				}
			}()
		}
		var lwg sync.WaitGroup
		lwg.Add(1)
		go func() { // loaders, until the others are done
			defer lwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h := db.AllocCursor()
				if h > 0 {
					if _, err := db.Load(uint64(rand.IntN(int(h)))); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
				}
			}
		}()
		wg.Add(1)
		go func() { // full collections
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if _, err := db.FullCollect(ctx); err != nil && !errors.Is(err, ErrCollecting) {
					t.Error(err)
					return
				}
				time.Sleep(20 * time.Millisecond) // pacing: a full collection every 20 ms
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			close(stop)
			lwg.Wait()
		case <-time.After(120 * time.Second):
			close(stop)
			t.Fatal("stress test hung (deadlock?)")
		}
		// Let the collector drain, then check.
		if _, err := db.CollectGarbageGrace(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
		rep, err := db.Check(ctx, false)
		if err != nil || !rep.OK() {
			t.Fatalf("check: %v %v", err, rep.Problems)
		}
		verifyInvariants(t, db)
		t.Logf("%s: %d commits, %d refused, %d removed, %d objects left", kind, commits.Load(), refused.Load(), removed.Load(), rep.Objects)
	})
}
