package engine

import (
	"context"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// TestCheckProgress: CheckWith reports records read against the object
// count, ascending, ending at done == total; a damaged reference far
// beyond next_oid is reported as dangling (counted in the overflow map).
func TestCheckProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		const n = 3*checkProgressEvery + 7
		mustAlloc(t, db, n)
		recs := make([][]byte, 0, n)
		for oid := uint64(0); oid < n; oid++ {
			if oid+1 < n {
				recs = append(recs, rec(oid, oid+1))
			} else {
				recs = append(recs, rec(oid))
			}
		}
		mustCommit(t, db, recs...)
		var calls [][2]int64
		rep, err := db.CheckWith(ctx, CheckOptions{Progress: func(done, total int64) {
			calls = append(calls, [2]int64{done, total})
		}})
		if err != nil || !rep.OK() {
			t.Fatalf("check: %v %+v", err, rep)
		}
		if len(calls) < 3 {
			t.Fatalf("%d progress calls for %d records: %v", len(calls), n, calls)
		}
		for i, c := range calls {
			if c[1] != n || c[0] > c[1] || i > 0 && c[0] < calls[i-1][0] {
				t.Fatalf("progress call %d: %v (all: %v)", i, c, calls)
			}
		}
		if last := calls[len(calls)-1]; last[0] != n {
			t.Fatalf("last progress call %v, want %d done", last, n)
		}
		// A stray reference far above next_oid.
		far := uint64(denseDegreeLimit - 1)
		err = kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			return tx.Put(BucketObjects, record.OIDBytes(n-1), rec(n-1, far))
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err = db.Check(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Dangling != 1 || len(rep.DanglingRefs) != 1 || rep.DanglingRefs[0] != (DanglingRef{Referrer: n - 1, Missing: far}) {
			t.Fatalf("far dangling reference: %+v", rep)
		}
	})
}
