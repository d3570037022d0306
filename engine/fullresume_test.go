package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
)

// TestInterruptedFullCollectionStartsAgain: a full collection stopped
// after its first sweep batch (as by kill -9) leaves unreachable objects
// whose referrers it deleted, counted as if they were still referenced;
// the reference-count collector never takes them. meta full says so (in
// Stats and Check), and the next writable open with a collector starts a
// full collection that finishes the work: every unreachable object goes
// and the counts are true again (FORMAT.md §4).
func TestInterruptedFullCollectionStartsAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		// Unreachable pairs k -> k+1000 (k = 1..999): the first sweep
		// batch (512 candidates, ascending) deletes referrers whose
		// referents wait for a later batch.
		const pairs = 999
		mustAlloc(t, db, 2*pairs+2)
		recs := [][]byte{rec(0)}
		for k := uint64(1); k <= pairs; k++ {
			recs = append(recs, rec(k, k+1000), rec(k+1000))
		}
		mustCommit(t, db, recs...)

		ctx, cancel := context.WithCancel(context.Background())
		sweeps := 0
		db.opts.OnFullPhase = func(phase string) {
			if phase == "sweep" {
				if sweeps++; sweeps == 2 {
					cancel() // the process stops after one batch
				}
			}
		}
		if _, err := db.FullCollect(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted full collection: %v, want context.Canceled", err)
		}
		db.opts.OnFullPhase = nil
		st, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.FullUnfinished == "" {
			t.Fatal("Stats: FullUnfinished empty after a sweep was interrupted")
		}
		rep, err := db.Check(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.FullUnfinished == "" || rep.OK() {
			t.Fatalf("check after the interruption: unfinished %q, %d problems; want the note and refcount problems", rep.FullUnfinished, rep.ProblemCount)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		// Reopen with a collector whose grace keeps it out of the way:
		// only a full collection can take the over-counted objects.
		opts := testOpts(kind)
		opts.Create = false
		opts.GC = GCPolicy{Mode: GCContinuous}
		opts.GCGrace = time.Hour
		db = openTest(t, dir, opts)
		testwait.For(t, "the interrupted full collection to finish", func() bool {
			st, err := db.Stats()
			return err == nil && st.FullUnfinished == "" && !st.FullCollecting
		})
		if n, _ := db.Size(); n != 1 {
			t.Fatalf("size %d after the full collection started again, want 1 (the root)", n)
		}
		rep, err = db.Check(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.FullUnfinished != "" {
			t.Fatalf("check after the full collection finished: %d problems (%v), unfinished %q", rep.ProblemCount, rep.Problems, rep.FullUnfinished)
		}

		// A finished collection clears meta full: a clean open starts none.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openTest(t, dir, opts)
		if db.full.running.Load() {
			t.Fatal("a full collection started on an open after a finished one")
		}
	})
}
