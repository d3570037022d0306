package engine

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

func TestCommitLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		if db.Backend() != kind {
			t.Fatalf("backend %s, want %s", db.Backend(), kind)
		}
		if _, err := db.Load(0); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "oid 0") {
			t.Fatalf("load of missing root: %v", err)
		}
		first := mustAlloc(t, db, 32)
		if first != 0 {
			t.Fatalf("first oid %d, want 0", first)
		}
		root := rec(0, 1, 2, 2, 0) // duplicates and self-ref allowed
		mustCommit(t, db, root, rec(1, 2), rec(2))
		for _, r := range [][]byte{root, rec(1, 2), rec(2)} {
			got, err := db.Load(record.OID(r))
			if err != nil || !bytes.Equal(got, r) {
				t.Fatalf("load %d = %x, %v; want %x", record.OID(r), got, err, r)
			}
		}
		if n, _ := db.Size(); n != 3 {
			t.Fatalf("size %d, want 3", n)
		}
		if ok, err := db.HasRecord(1); !ok || err != nil {
			t.Fatalf("HasRecord(1) = %v, %v", ok, err)
		}
		if ok, err := db.HasRecord(5); ok || err != nil {
			t.Fatalf("HasRecord(5) = %v, %v", ok, err)
		}
		counts := dump(t, db, BucketRefcounts)
		if len(counts) != 2 || !bytes.Equal(counts[1], []byte{0, 0, 0, 1}) || !bytes.Equal(counts[2], []byte{0, 0, 0, 2}) {
			t.Fatalf("refcounts %x", counts)
		}
		verifyInvariants(t, db)
		// Replace: drop refs to 2 from root; 2 keeps one referrer.
		mustCommit(t, db, rec(0, 1))
		verifyInvariants(t, db)
		// Drop 1 from the root: 1 becomes garbage, 2 still referenced by 1.
		mustCommit(t, db, rec(0))
		g := dump(t, db, BucketGarbage)
		if _, ok := g[1]; !ok || len(g) != 1 {
			t.Fatalf("garbage %v, want {1}", sortedKeys(g))
		}
		verifyInvariants(t, db)
	})
}

func TestCommitValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustAlloc(t, db, 10)
		mustCommit(t, db, rec(0, 1), rec(1))
		before := dump(t, db, BucketObjects)
		ctx := context.Background()
		cases := []struct {
			name string
			recs [][]byte
			want error
			oid  string
		}{
			{"short", [][]byte{rec(2), {0, 0, 0, 0, 0, 0, 0, 3, 0}}, ErrMalformed, "oid 3"},
			{"past end", [][]byte{append(record.OIDBytes(4), 0, 0, 0, 9, 1)}, ErrMalformed, "oid 4"},
			{"refs not 8", [][]byte{append(rec(5), 1, 2, 3)}, ErrMalformed, "oid 5"},
			{"duplicate", [][]byte{rec(2), rec(3), rec(2)}, ErrDuplicateOID, "oid 2"},
			{"unallocated", [][]byte{rec(2), rec(1 << 40)}, ErrUnallocated, "oid 1099511627776"},
			{"cursor", [][]byte{rec(10)}, ErrUnallocated, "oid 10"},
			{"dangling", [][]byte{rec(2, 1), rec(4, 7)}, ErrDangling, "oid 7"},
			{"dangling root", [][]byte{rec(1, 9)}, ErrDangling, "oid 9"},
		}
		for _, c := range cases {
			_, err := db.Commit(ctx, c.recs)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.oid) {
				t.Errorf("%s: got %v, want %v naming %s", c.name, err, c.want, c.oid)
			}
		}
		if after := dump(t, db, BucketObjects); len(after) != len(before) {
			t.Fatalf("refused commits changed objects: %v", sortedKeys(after))
		}
		verifyInvariants(t, db)
		// A ref to an oid stored in a later frame of the same commit is fine.
		mustCommit(t, db, rec(1, 3), rec(3, 2), rec(2))
		verifyInvariants(t, db)
		// Read-only.
		dir := db.Dir()
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		ro := openTest(t, dir, Options{ReadOnly: true})
		if _, err := ro.Commit(ctx, [][]byte{rec(0)}); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("read-only commit: %v", err)
		}
		if !ro.ReadOnly() {
			t.Fatal("ReadOnly() false")
		}
		if got, err := ro.Load(3); err != nil || !bytes.Equal(got, rec(3, 2)) {
			t.Fatalf("read-only load: %x %v", got, err)
		}
		if ro.Pack() {
			t.Fatal("Pack on read-only started")
		}
	})
}

func TestRootWithoutAlloc(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustCommit(t, db, rec(0))
		if _, err := db.Commit(context.Background(), [][]byte{rec(1)}); !errors.Is(err, ErrUnallocated) {
			t.Fatalf("oid 1 without allocation: %v", err)
		}
		if g := dump(t, db, BucketGarbage); len(g) != 0 {
			t.Fatalf("root queued as garbage: %v", sortedKeys(g))
		}
	})
}

func TestAllocation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		if v, _ := metaGet(t, db, MetaNextOID); record.OID(v) != 0 {
			t.Fatalf("fresh next_oid %d", record.OID(v))
		}
		if f := mustAlloc(t, db, 32); f != 0 {
			t.Fatalf("first %d", f)
		}
		if v, _ := metaGet(t, db, MetaNextOID); record.OID(v) != 1024 {
			t.Fatalf("next_oid after first block %d, want 1024", record.OID(v))
		}
		if f := mustAlloc(t, db, 1000); f != 32 {
			t.Fatalf("second run starts %d", f)
		}
		if f := mustAlloc(t, db, 255); f != 1032 {
			t.Fatalf("third run starts %d", f)
		}
		if v, _ := metaGet(t, db, MetaNextOID); record.OID(v) != 2048 {
			t.Fatalf("next_oid %d, want 2048", record.OID(v))
		}
		if f := mustAlloc(t, db, 0); f != 1287 || db.AllocCursor() != 1287 {
			t.Fatalf("empty run %d cursor %d", f, db.AllocCursor())
		}
		mustCommit(t, db, rec(0), rec(1286))
		db.Close()
		// Restart: resumes at next_oid, never below.
		db = openTest(t, dir, testOpts(kind))
		if db.AllocCursor() != 2048 {
			t.Fatalf("cursor after restart %d, want 2048", db.AllocCursor())
		}
		if f := mustAlloc(t, db, 1); f != 2048 {
			t.Fatalf("after restart %d", f)
		}
		// Oids below the cursor from an earlier run are committable.
		mustCommit(t, db, rec(5))
		// Read-only: from memory, nothing persisted.
		db.Close()
		ro := openTest(t, dir, Options{ReadOnly: true})
		if f, err := ro.AllocOIDs(4000); err != nil || f != 3072 {
			t.Fatalf("read-only alloc %d %v", f, err)
		}
		if v, _ := metaGet(t, ro, MetaNextOID); record.OID(v) != 3072 {
			t.Fatalf("read-only alloc persisted next_oid %d", record.OID(v))
		}
	})
}

// TestDurabilityModes: a sync commit runs one group flush and the other
// modes none; across a kill -9 every commit acknowledged in sync and
// write-nosync mode survives, and nosync loses at most a suffix of the
// commits (on Berkeley DB it loses what was still in the log buffer).
func TestDurabilityModes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		for _, d := range []kv.Durability{kv.Sync, kv.WriteNoSync, kv.NoSync} {
			t.Run(d.String(), func(t *testing.T) {
				o := testOpts(kind)
				o.Durability = d
				db := openTest(t, t.TempDir(), o)
				mustAlloc(t, db, 1)
				f0 := db.pipe.flushes.Flushes()
				mustCommit(t, db, rec(0))
				flushed := db.pipe.flushes.Flushes() - f0
				if d == kv.Sync && flushed != 1 {
					t.Errorf("sync commit ran %d flushes, want 1", flushed)
				}
				if st, err := db.Stats(); err != nil || (d == kv.Sync) != (st.FlushTime > 0) {
					t.Errorf("%s: Stats().FlushTime %v (err %v) after %d flushes", d, st.FlushTime, err, flushed)
				}
				if d != kv.Sync && flushed != 0 {
					t.Errorf("%s commit ran %d flushes", d, flushed)
				}

				dir, acked := crashRun(t, kind, d, 1, 100)
				kept, lost := reopenAfterCrash(t, kind, d, dir, acked)
				t.Logf("%s: %d acknowledged commits, %d lost by a kill -9", d, len(acked), len(lost))
				if d != kv.NoSync && len(lost) > 0 {
					t.Fatalf("%d of %d acknowledged %s commits lost by a kill -9: %v", len(lost), len(acked), d, lost)
				}
				if !slices.Equal(kept, acked[:len(kept)]) {
					t.Fatalf("commits survived after a lost one: kept %v of %v", kept, acked)
				}
			})
		}
	})
}

func TestStatsAndMeta(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		for k, want := range map[string]string{MetaLayout: "durusbdb/1", MetaAccess: "btree", MetaInUse: "1", MetaWriter: "durusbdb " + Version} {
			if v, _ := metaGet(t, db, k); string(v) != want {
				t.Errorf("meta %s = %q, want %q", k, v, want)
			}
		}
		if v, _ := metaGet(t, db, MetaBackend); (kind == "leveldb") != (string(v) == "leveldb") {
			t.Errorf("meta backend = %q on %s", v, kind)
		}
		mustAlloc(t, db, 3)
		mustCommit(t, db, rec(0), rec(1), rec(2))
		st, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Objects != 3 || st.GCQueue != 2 || st.Backend != kind || st.Commits != 1 || st.AllocCursor != 3 || st.NextOID != 1024 {
			t.Fatalf("stats %+v", st)
		}
		db.Close()
		db = openTest(t, dir, Options{ReadOnly: true})
		if _, ok := metaGet(t, db, MetaInUse); ok {
			t.Fatal("in_use still set after a clean close")
		}
		if db.UncleanShutdown() {
			t.Fatal("unclean after clean close")
		}
	})
}
