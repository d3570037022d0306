package engine

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// source yields recs in order.
func source(recs ...[]byte) func(func([]byte) error) error {
	return func(yield func([]byte) error) error {
		for _, r := range recs {
			if err := yield(r); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestImport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		ctx := context.Background()
		var progress []int64
		recs := [][]byte{
			rec(0, 1, 2),
			rec(1, 2),
			rec(2, 999), // dangling
			rec(5000),   // garbage
			rec(7, 8),   // garbage cycle
			rec(8, 7),
			rec(1, 2, 3), // replaces 1: last wins
			rec(3),
		}
		st, err := db.Import(ctx, source(recs...), ImportOptions{
			BatchRecords: 3,
			Progress:     func(r, b int64) { progress = append(progress, r) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Records != 8 || st.Objects != 7 || st.MaxOID != 5000 || st.Dangling != 1 ||
			len(st.DanglingRefs) != 1 || st.DanglingRefs[0] != (DanglingRef{2, 999}) || st.Garbage != 1 || st.MissingRoot {
			t.Fatalf("stats %+v", st)
		}
		if len(progress) < 3 || progress[len(progress)-1] != 8 {
			t.Fatalf("progress %v", progress)
		}
		if got, _ := db.Load(1); !bytes.Equal(got, rec(1, 2, 3)) {
			t.Fatalf("last record of oid 1 not kept: %x", got)
		}
		if db.AllocCursor() <= 5000 {
			t.Fatalf("cursor %d not above the largest imported oid", db.AllocCursor())
		}
		if f := mustAlloc(t, db, 1); f <= 5000 {
			t.Fatalf("allocated %d", f)
		}
		if n, _ := db.Size(); n != 7 {
			t.Fatalf("size %d", n)
		}
		counts := dump(t, db, BucketRefcounts)
		want := map[uint64]uint32{1: 1, 2: 2, 3: 1, 7: 1, 8: 1, 999: 1}
		for oid, w := range want {
			if v := counts[oid]; len(v) != 4 || uint32(record.OID(append(make([]byte, 4), v...))) != w {
				t.Errorf("count of %d = %x, want %d", oid, v, w)
			}
		}
		if g := sortedKeys(dump(t, db, BucketGarbage)); !slices.Equal(g, []uint64{5000}) {
			t.Fatalf("garbage %v", g)
		}
		if _, ok := metaGet(t, db, MetaImport); ok {
			t.Fatal("import marker left")
		}
		rep, err := db.Check(ctx, false)
		if err != nil || rep.Dangling != 1 || rep.ProblemCount != 1 {
			t.Fatalf("check after import: %v %+v", err, rep)
		}
		// A second import is refused without force.
		if _, err := db.Import(ctx, source(rec(0)), ImportOptions{}); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("import into non-empty: %v", err)
		}
		// Forced: replaces the contents.
		st, err = db.Import(ctx, source(rec(0, 1), rec(1)), ImportOptions{Force: true})
		if err != nil || st.Objects != 2 {
			t.Fatalf("forced import %+v %v", st, err)
		}
		if _, err := db.Load(5000); !errors.Is(err, ErrNotFound) {
			t.Fatal("forced import kept old contents")
		}
		verifyInvariants(t, db)
		// Full collection removes the imported cycle; dangling refs do not stop it.
		db.Close()
		db = openTest(t, dir, testOpts(kind))
		if db.AllocCursor() < 5001 {
			t.Fatalf("cursor after reopen %d", db.AllocCursor())
		}
	})
}

func TestImportDanglingCollect(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		ctx := context.Background()
		if _, err := db.Import(ctx, source(rec(0, 1), rec(1, 77), rec(7, 8), rec(8, 7, 88)), ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		st, err := db.FullCollect(ctx)
		if err != nil || st.Removed != 2 || st.Dangling != 1 {
			t.Fatalf("collect %+v %v", st, err)
		}
		// A client may still update the referrer of an imported dangling ref.
		mustCommit(t, db, rec(1, 77))
		if _, err := db.Load(1); err != nil {
			t.Fatal(err)
		}
	})
}

func TestImportFailureLeavesEmpty(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		ctx := context.Background()
		boom := errors.New("source broke at offset 1234")
		src := func(yield func([]byte) error) error {
			for i := uint64(0); i < 100; i++ {
				if err := yield(rec(i)); err != nil {
					return err
				}
			}
			return boom
		}
		_, err := db.Import(ctx, src, ImportOptions{BatchRecords: 10})
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
		if n, _ := db.Size(); n != 0 {
			t.Fatalf("size %d after failed import", n)
		}
		if o := dump(t, db, BucketObjects); len(o) != 0 {
			t.Fatalf("%d records left", len(o))
		}
		if _, ok := metaGet(t, db, MetaImport); ok {
			t.Fatal("marker left after cleaned failure")
		}
		// Malformed record and cancel.
		if _, err := db.Import(ctx, source(rec(0), []byte{1, 2, 3}), ImportOptions{}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("malformed: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		_, err = db.Import(cctx, func(yield func([]byte) error) error {
			yield(rec(0))
			cancel()
			return yield(rec(1))
		}, ImportOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancel: %v", err)
		}
		if o := dump(t, db, BucketObjects); len(o) != 0 {
			t.Fatalf("%d records left after cancel", len(o))
		}
		mustAlloc(t, db, 1)
		mustCommit(t, db, rec(0))
		db.Close()
		// A crash mid-import: marker present → refused unless ForImport.
		db = openTest(t, dir, testOpts(kind))
		if err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			return tx.Put(BucketMeta, []byte(MetaImport), []byte("2026-01-01T00:00:00Z"))
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = Open(ctx, dir, testOpts(kind))
		if !errors.Is(err, ErrImportIncomplete) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("open with marker: %v", err)
		}
		o := testOpts(kind)
		o.ForImport = true
		db = openTest(t, dir, o)
		if _, err := db.Commit(ctx, [][]byte{rec(0)}); !errors.Is(err, ErrImportIncomplete) {
			t.Fatalf("commit into incomplete import: %v", err)
		}
		if _, err := db.Import(ctx, source(rec(0)), ImportOptions{}); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("unforced import over incomplete one: %v", err)
		}
		if _, err := db.Import(ctx, source(rec(0, 4), rec(4)), ImportOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		db = openTest(t, dir, testOpts(kind))
		if n, _ := db.Size(); n != 2 {
			t.Fatalf("size %d", n)
		}
	})
}

func TestScan(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustAlloc(t, db, 20000)
		var recs [][]byte
		for _, o := range []uint64{300, 0, 256, 1, 65536 % 20000, 9000, 255, 19999} {
			recs = append(recs, rec(o))
		}
		mustCommit(t, db, recs...)
		var got []uint64
		err := db.Scan(context.Background(), func(oid uint64, r []byte) error {
			if !bytes.Equal(r, rec(oid)) {
				t.Errorf("scan oid %d record %x", oid, r)
			}
			got = append(got, oid)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(got) || len(got) != len(recs) {
			t.Fatalf("scan order %v", got)
		}
		stop := errors.New("stop")
		if err := db.Scan(context.Background(), func(uint64, []byte) error { return stop }); err != stop {
			t.Fatalf("scan error %v", err)
		}
	})
}

// TestImportPackedCounts: a source without repeated oids (a packed file)
// gets its counts from the streaming pass alone; they must equal the true
// in-degrees, across many small batches.
func TestImportPackedCounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		rng := rand.New(rand.NewPCG(7, 9))
		var recs [][]byte
		for oid := uint64(0); oid < 1000; oid++ {
			var refs []uint64
			for range rng.IntN(4) {
				refs = append(refs, rng.Uint64N(1000))
			}
			recs = append(recs, rec(oid, refs...))
		}
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		st, err := db.Import(context.Background(), source(recs...), ImportOptions{BatchRecords: 7})
		if err != nil || st.Objects != 1000 || st.Records != 1000 {
			t.Fatalf("import: %+v %v", st, err)
		}
		verifyInvariants(t, db)
		rep, err := db.Check(context.Background(), false)
		if err != nil || rep.ProblemCount != 0 {
			t.Fatalf("check: %v %+v", err, rep)
		}
	})
}
