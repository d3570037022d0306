package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// TestFullRecountRacesCommits commits, in the middle of the recount's
// scan, records that add and drop references, store new objects and
// remove an object's last referrer, while some stored counts have
// drifted. The commits must not wait for the scan (the recount used to
// hold writeMu across it), the drift must be repaired, the counts must
// equal the true in-degrees afterwards, and the reference-count collector
// run afterwards must remove exactly the unreferenced object.
func TestFullRecountRacesCommits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		mustAlloc(t, db, 100)
		// 0 -> {1, 4}, 1 -> 2, 4 -> 5; 3 and 6 are referenced later.
		mustCommit(t, db, rec(0, 1, 4), rec(1, 2), rec(2), rec(4, 5), rec(5))
		// Drift: 2's stored count too low (a collector would remove a
		// reachable object), 5's too high.
		err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			if err := tx.Delete(BucketRefcounts, record.OIDBytes(2)); err != nil {
				return err
			}
			if err := tx.Put(BucketGarbage, record.OIDBytes(2), int8Bytes(1)); err != nil {
				return err
			}
			return tx.Put(BucketRefcounts, record.OIDBytes(5), int4Bytes(3))
		})
		if err != nil {
			t.Fatal(err)
		}
		scans := 0
		db.opts.OnFullPhase = func(phase string) {
			if phase != "recount-scan" {
				return
			}
			scans++
			if scans > 1 {
				return // a retried snapshot: commit once
			}
			done := make(chan error, 1)
			go func() {
				// 1 drops 2 and gains 3 (new); 6 (new) refers to 2 and 5;
				// 0 drops 4, whose only referrer it was.
				_, err := db.Commit(ctx, [][]byte{rec(3), rec(6, 2, 5), rec(1, 3, 6), rec(0, 1)})
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("commit during the recount: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("a commit waited for the recount's scan")
			}
		}
		st, err := db.FullCollect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if scans == 0 {
			t.Fatal("the recount's scan hook never ran")
		}
		if st.Fixed == 0 {
			t.Errorf("no repair reported, want the drifted counts fixed: %+v", st)
		}
		rep, err := db.Check(ctx, false)
		if err != nil || !rep.OK() {
			t.Fatalf("check after the collection: %v %v", err, rep.Problems)
		}
		db.opts.OnFullPhase = nil
		n, err := db.CollectGarbageGrace(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, oid := range []uint64{0, 1, 2, 3, 5, 6} {
			if _, err := db.Load(oid); err != nil {
				t.Errorf("reachable oid %d: %v", oid, err)
			}
		}
		if _, err := db.Load(4); !errors.Is(err, ErrNotFound) {
			t.Errorf("oid 4 (unreferenced since the recount) survived the collector: %v", err)
		}
		if n != 1 {
			t.Errorf("collector removed %d objects, want 1 (oid 4)", n)
		}
		verifyInvariants(t, db)
	})
}
