package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// buildByHand creates a database directory through kv only, from the
// documented layout; meta holds exactly the given keys.
func buildByHand(t *testing.T, kind string, meta map[string][]byte, objs [][]byte, counts map[uint64]uint32, garbage []uint64) string {
	t.Helper()
	dir := t.TempDir()
	store, _, err := backend.Open(kv.Options{Dir: dir, Create: true, Buckets: Buckets(false, 0)}, kind)
	if err != nil {
		t.Fatal(err)
	}
	err = kv.Update(context.Background(), store, kv.Sync, func(tx kv.Txn) error {
		for k, v := range meta {
			if err := tx.Put("meta", []byte(k), v); err != nil {
				return err
			}
		}
		for _, r := range objs {
			if err := tx.Put("objects", r[:8], r); err != nil {
				return err
			}
		}
		for oid, n := range counts {
			if err := tx.Put("refcounts", record.OIDBytes(oid), []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}); err != nil {
				return err
			}
		}
		for _, oid := range garbage {
			if err := tx.Put("garbage", record.OIDBytes(oid), int8Bytes(uint64(time.Now().UnixMilli()))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readBack opens dir's store directly and returns meta.
func readMetaDirect(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	store, _, err := backend.Open(kv.Options{Dir: dir, ReadOnly: true, Buckets: Buckets(false, 0)}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, _, err := readMeta(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	return m.vals
}

func TestHandBuiltLayout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		meta := map[string][]byte{"layout": []byte("durusbdb/1"), "access": []byte("btree")}
		objs := [][]byte{rec(0, 1, 5), rec(1, 5), rec(5), rec(9)}
		counts := map[uint64]uint32{1: 1, 5: 2}
		dir := buildByHand(t, kind, meta, objs, counts, []uint64{9})

		// Read-only: size counted in memory, nothing written.
		ro := openTest(t, dir, Options{ReadOnly: true})
		if n, _ := ro.Size(); n != 4 {
			t.Fatalf("read-only size %d", n)
		}
		if ro.AllocCursor() != 10 {
			t.Fatalf("read-only cursor %d", ro.AllocCursor())
		}
		if err := ro.Close(); err != nil {
			t.Fatal(err)
		}
		m := readMetaDirect(t, dir)
		if _, ok := m["size"]; ok {
			t.Fatal("read-only open wrote size")
		}
		if _, ok := m["in_use"]; ok {
			t.Fatal("read-only open wrote in_use")
		}
		delete(m, "backend") // the LevelDB backend writes m backend itself
		if len(m) != 2 {
			t.Fatalf("read-only open changed meta: %q", m)
		}
		// Writable: size rebuilt and stored, next_oid above the largest oid.
		db := openTest(t, dir, testOpts(kind))
		if n, _ := db.Size(); n != 4 {
			t.Fatalf("size %d", n)
		}
		if f := mustAlloc(t, db, 1); f != 10 {
			t.Fatalf("first oid after hand-built %d", f)
		}
		rep, err := db.Check(context.Background(), false)
		if err != nil || !rep.OK() {
			t.Fatalf("check %v %v", err, rep.Problems)
		}
		for oid, want := range map[uint64][]byte{0: rec(0, 1, 5), 9: rec(9)} {
			if got, err := db.Load(oid); !bytes.Equal(got, want) {
				t.Fatalf("load %d %x %v", oid, got, err)
			}
		}
		db.Close()
		m = readMetaDirect(t, dir)
		if record.OID(m["size"]) != 4 || len(m["size"]) != 8 {
			t.Fatalf("size not stored: %x", m["size"])
		}
		if len(m["next_oid"]) != 8 || record.OID(m["next_oid"]) < 11 {
			t.Fatalf("next_oid %x", m["next_oid"])
		}
		if string(m["writer"]) != "durusbdb "+Version {
			t.Fatalf("writer %q", m["writer"])
		}
	})
}

func TestLayoutErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		ctx := context.Background()
		// Newer layout.
		dir := buildByHand(t, kind, map[string][]byte{"layout": []byte("durusbdb/2")}, nil, nil, nil)
		for _, ro := range []bool{false, true} {
			_, err := Open(ctx, dir, Options{ReadOnly: ro})
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("durusbdb/2 (read-only %v): %v", ro, err)
			}
			for _, want := range []string{dir, `"durusbdb/2"`, "durusbdb/1"} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not name %s", err, want)
				}
			}
		}
		// Data without a layout key.
		dir = buildByHand(t, kind, map[string][]byte{"size": int8Bytes(1)}, [][]byte{rec(0)}, nil, nil)
		if _, err := Open(ctx, dir, testOpts(kind)); !errors.Is(err, ErrLayout) {
			t.Fatalf("no layout: %v", err)
		}
	})
	// A directory of something else.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Data.fs"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "objects.dat"), []byte("x"), 0o644)
	_, err := Open(context.Background(), dir, Options{Create: true})
	if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "Data.fs, objects.dat") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("foreign dir: %v", err)
	}
	// A directory of many other things (durusbdb stats --dir /tmp): the
	// error names the first ten, not every file.
	dir = t.TempDir()
	for i := range 500 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("junk-%03d.txt", i)), []byte("x"), 0o644)
	}
	_, err = Open(context.Background(), dir, Options{ReadOnly: true})
	if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "junk-009.txt, …") || len(err.Error()) > 1000 {
		t.Fatalf("directory of 500 files: error of %d bytes: %.2000v", len(err.Error()), err)
	}
	// Empty without Create.
	if _, err := Open(context.Background(), t.TempDir(), Options{}); !errors.Is(err, kv.ErrNotDB) {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "missing"), Options{Create: true}); err == nil {
		t.Fatal("missing dir opened")
	}
}

// TestLayoutBytes opens an engine-written directory through kv and checks
// every key and value against FORMAT.md.
func TestLayoutBytes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		mustAlloc(t, db, 3)
		before := time.Now().UnixMilli()
		mustCommit(t, db, rec(0, 1, 1, 2), rec(1, 2), rec(2))
		mustCommit(t, db, rec(0, 1, 2))
		db.Close()
		store, _, err := backend.Open(kv.Options{Dir: dir, ReadOnly: true, Buckets: Buckets(false, 0)}, "")
		if err == nil {
			defer store.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		all := map[string]map[string][]byte{}
		err = kv.View(context.Background(), store, func(tx kv.Txn) error {
			for _, b := range []string{"meta", "objects", "refcounts", "garbage"} {
				all[b] = map[string][]byte{}
				c, err := tx.Cursor(b)
				if err != nil {
					return err
				}
				for ok := c.First(); ok; ok = c.Next() {
					all[b][string(c.Key())] = c.Value()
				}
				c.Close()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		k := func(o uint64) string { return string(record.OIDBytes(o)) }
		wantObj := map[string][]byte{k(0): rec(0, 1, 2), k(1): rec(1, 2), k(2): rec(2)}
		if len(all["objects"]) != 3 {
			t.Fatalf("objects %v", all["objects"])
		}
		for key, v := range wantObj {
			if !bytes.Equal(all["objects"][key], v) {
				t.Fatalf("objects[%x] = %x, want %x", key, all["objects"][key], v)
			}
		}
		wantCounts := map[string][]byte{k(1): {0, 0, 0, 1}, k(2): {0, 0, 0, 2}}
		if len(all["refcounts"]) != 2 || !bytes.Equal(all["refcounts"][k(1)], wantCounts[k(1)]) || !bytes.Equal(all["refcounts"][k(2)], wantCounts[k(2)]) {
			t.Fatalf("refcounts %x", all["refcounts"])
		}
		if len(all["garbage"]) != 0 {
			t.Fatalf("garbage %x", all["garbage"])
		}
		m := all["meta"]
		wantMeta := map[string][]byte{
			"layout": []byte("durusbdb/1"), "access": []byte("btree"), "size": int8Bytes(3),
			"next_oid": int8Bytes(1024), "writer": []byte("durusbdb " + Version), "gc": make([]byte, 16),
		}
		if kind == "leveldb" {
			wantMeta["backend"] = []byte("leveldb")
		}
		for key, v := range wantMeta {
			if !bytes.Equal(m[key], v) {
				t.Errorf("meta %s = %q, want %q", key, m[key], v)
			}
		}
		if _, err := time.Parse(time.RFC3339, string(m["created"])); err != nil {
			t.Errorf("meta created %q: %v", m["created"], err)
		}
		if len(m) != len(wantMeta)+1 {
			t.Errorf("meta has unexpected keys: %q", m)
		}
		_ = before
	})
}

func TestHashAccess(t *testing.T) {
	if !containsStr(backend.Compiled(), backend.BDB) {
		t.Log("bdb not compiled in: hash access is refused for leveldb")
		o := testOpts(backend.LevelDB)
		o.Access = "hash"
		if _, err := Open(context.Background(), t.TempDir(), o); err == nil {
			t.Fatal("hash access accepted for leveldb")
		}
		return
	}
	dir := t.TempDir()
	o := testOpts(backend.BDB)
	o.Access = "hash"
	db := openTest(t, dir, o)
	mustAlloc(t, db, 5000)
	var recs [][]byte
	for i := 4999; i > 0; i -= 7 {
		recs = append(recs, rec(uint64(i)))
	}
	recs = append(recs, rec(0, 4999))
	mustCommit(t, db, recs...)
	db.Close()
	db = openTest(t, dir, testOpts(backend.BDB))
	st, _ := db.Stats()
	if st.Access != "hash" {
		t.Fatalf("access %s", st.Access)
	}
	var last uint64
	n := 0
	err := db.Scan(context.Background(), func(oid uint64, r []byte) error {
		if n > 0 && oid <= last {
			t.Fatalf("scan not ascending: %d after %d", oid, last)
		}
		last = oid
		n++
		return nil
	})
	if err != nil || n != len(recs) {
		t.Fatalf("scan %d %v", n, err)
	}
	if st, err := db.FullCollect(context.Background()); err != nil || st.Removed != len(recs)-2 {
		t.Fatalf("full collect on hash: %+v %v", st, err)
	}
	verifyInvariants(t, db)
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
