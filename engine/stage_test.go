package engine

import (
	"context"
	"errors"
	"testing"
)

// Rule 10 is decided when a commit is staged, before a server tells
// anybody what it stores: Stage itself refuses a dangling reference, and
// queues nothing. References to oids stored by the same commit or by a
// commit staged before it, and references the stored record already held,
// are fine.
func TestStageRefusesDangling(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		mustAlloc(t, db, 64)
		mustCommit(t, db, rec(0, 1), rec(1))
		if _, err := db.Stage(ctx, [][]byte{rec(2, 40)}); !errors.Is(err, ErrDangling) {
			t.Fatalf("Stage of a dangling reference: %v, want ErrDangling", err)
		}
		if db.pipe.staged.Load() != 0 {
			t.Fatalf("the refused commit was queued: %d oids in flight", db.pipe.staged.Load())
		}
		// Stored by an earlier staged commit, not yet applied.
		a := mustStage(t, db, rec(3))
		b := mustStage(t, db, rec(4, 3), rec(1, 4))
		for _, p := range []*Pending{a, b} {
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("wait: %v", err)
			}
		}
		verifyInvariants(t, db)
	})
}

// The reference-count collector does not delete an object that a staged,
// not yet applied commit refers to: the commit was accepted at Stage and
// must not turn dangling at apply time.
func TestCollectorSparesStagedRefs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		mustAlloc(t, db, 64)
		mustCommit(t, db, rec(0), rec(5)) // 5: unreferenced, a candidate
		p := mustStage(t, db, rec(0, 5))
		n, err := db.CollectGarbageGrace(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("collector removed %d objects while a staged commit refers to 5", n)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("staged commit refused at apply: %v", err)
		}
		if _, err := db.Load(5); err != nil {
			t.Fatalf("load 5: %v", err)
		}
		verifyInvariants(t, db)
	})
}

// Likewise a full collection that begins after a commit was staged keeps
// what the commit refers to, although it is unreachable from the root.
func TestFullCollectSparesStagedRefs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		mustAlloc(t, db, 64)
		mustCommit(t, db, rec(0), rec(5), rec(6, 7), rec(7))
		p := mustStage(t, db, rec(0, 6))
		st, err := db.FullCollect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("staged commit refused at apply: %v", err)
		}
		for _, oid := range []uint64{6, 7} {
			if _, err := db.Load(oid); err != nil {
				t.Fatalf("load %d: %v", oid, err)
			}
		}
		if _, err := db.Load(5); !errors.Is(err, ErrNotFound) {
			t.Fatalf("5 (garbage) survived: %v (stats %+v)", err, st)
		}
		verifyInvariants(t, db)
	})
}

// Stage against a running collector: every commit that Stage accepted is
// applied; none turns dangling at apply time (delGate and the pins).
func TestStageVersusCollector(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		const rounds = 150
		base := mustAlloc(t, db, 2*rounds+8)
		mustCommit(t, db, rec(0))
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			for {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				if _, err := db.CollectGarbageGrace(ctx, 0, 0); err != nil {
					done <- err
					return
				}
			}
		}()
		accepted, refused := 0, 0
		for i := range rounds {
			y := base + 1 + uint64(2*i)
			x := y + 1
			mustCommit(t, db, rec(y)) // unreferenced: the collector's at once
			p, err := db.Stage(ctx, [][]byte{rec(x, y), rec(0, x)})
			if errors.Is(err, ErrDangling) {
				refused++ // collected first: refused before anything was announced
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted++
			if err := p.Wait(ctx); err != nil {
				t.Fatalf("round %d: accepted by Stage, refused at apply: %v", i, err)
			}
		}
		close(stop)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		t.Logf("%d accepted, %d refused at Stage", accepted, refused)
		verifyInvariants(t, db)
	})
}
