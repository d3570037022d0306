package engine

import (
	"context"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

func TestCheckAndRepair(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		mustAlloc(t, db, 20)
		mustCommit(t, db, rec(0, 1, 2), rec(1, 2), rec(2), rec(3), rec(4, 3))
		rep, err := db.Check(ctx, false)
		if err != nil || !rep.OK() || rep.Objects != 5 || rep.Refs != 4 {
			t.Fatalf("clean check: %v %+v", err, rep)
		}
		// Damage everything through kv.
		err = kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			k := record.OIDBytes
			steps := []error{
				tx.Put(BucketRefcounts, k(2), int4Bytes(7)),        // wrong count
				tx.Delete(BucketRefcounts, k(1)),                   // missing count
				tx.Put(BucketRefcounts, k(9), int4Bytes(1)),        // count for nothing
				tx.Put(BucketGarbage, k(0), int8Bytes(0)),          // root queued
				tx.Put(BucketGarbage, k(2), int8Bytes(0)),          // positive count queued
				tx.Delete(BucketGarbage, k(4)),                     // zero count not queued
				tx.Put(BucketMeta, []byte(MetaSize), int8Bytes(9)), // size
				tx.Put(BucketObjects, k(5), rec(5, 11)),            // dangling ref, unqueued
			}
			for _, e := range steps {
				if e != nil {
					return e
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err = db.Check(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[uint64]bool{
			ProblemRefcount:       {2: true, 1: true, 9: true, 11: true},
			ProblemGarbageInvalid: {0: true, 2: true},
			ProblemGarbageMissing: {4: true, 5: true},
			ProblemSize:           {0: true},
			ProblemDangling:       {11: true},
		}
		got := map[string]map[uint64]bool{}
		for _, p := range rep.Problems {
			if got[p.Kind] == nil {
				got[p.Kind] = map[uint64]bool{}
			}
			got[p.Kind][p.OID] = true
			if p.Expected == "" || p.Found == "" {
				t.Errorf("problem without expected/found: %v", p)
			}
		}
		for kind, oids := range want {
			for oid := range oids {
				if !got[kind][oid] {
					t.Errorf("missing problem %s oid %d; got %v", kind, oid, rep.Problems)
				}
			}
		}
		if rep.ProblemCount != 10 {
			t.Errorf("problem count %d: %v", rep.ProblemCount, rep.Problems)
		}
		// Repair, then all is well; no object deleted.
		rep, err = db.Check(ctx, true)
		if err != nil || rep.Repaired == 0 {
			t.Fatalf("repair %v %+v", err, rep)
		}
		rep, err = db.Check(ctx, false)
		if err != nil || rep.ProblemCount != 1 || rep.Dangling != 1 {
			t.Fatalf("after repair (only the dangling ref remains): %v %v", err, rep.Problems)
		}
		if n := len(dump(t, db, BucketObjects)); n != 6 {
			t.Fatalf("repair deleted objects: %d left", n)
		}
		if n, _ := db.Size(); n != 6 {
			t.Fatalf("size %d", n)
		}
	})
}
