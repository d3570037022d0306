// Package kvtest is the conformance suite every kv.Store backend must pass,
// and the benchmark bodies every backend runs, so that backends are compared
// on identical code.
//
// A backend's test file calls
//
//	func TestConformance(t *testing.T) {
//		kvtest.RunTests(t, func(t testing.TB, opts kv.Options) kv.Store {
//			s, err := mybackend.OpenStore(opts)
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite hands open a kv.Options whose Dir is a fresh t.TempDir() (or the
// directory of an earlier open, for reopen cases), Create true (false for the
// read-only reopen), and the buckets of Buckets: the four buckets of
// FORMAT.md (meta, objects, refcounts, garbage) plus one bucket created with
// the hash access method, over which only set equality (never order) is
// asserted. open must return an open store or fail the test; the suite closes
// what it opens.
//
// Contract points the suite asserts beyond kv.go's comments:
//   - Put and Delete in a read-only transaction, and a writable Begin (or the
//     first write) on a store opened with Options.ReadOnly, fail with an
//     error wrapping kv.ErrReadOnly.
//   - Once a Txn has ended, Get, Put, Delete, Cursor and Commit return
//     kv.ErrTxnDone and Abort returns nil. A Txn left open when the Store is
//     closed returns kv.ErrTxnDone or kv.ErrClosed from then on.
//   - Begin, Flush and Checkpoint after Close return kv.ErrClosed.
//   - Slices passed to Put are not retained (the caller may reuse them at
//     once); slices returned by Get, Key and Value are the caller's.
//   - A cursor stays usable when the transaction deletes the record it is
//     positioned on: Next then moves to the following key.
//   - Uncommitted data of a write transaction is never visible to another
//     transaction; a reader may block until the writer ends or fail with
//     kv.ErrConflict instead.
//   - A commit of any durability survives a clean Close and reopen.
//   - Commit of a read-only transaction ends it and returns nil.
//   - A read-only transaction reads the same data throughout (repeatable
//     reads); a writer meanwhile may wait, conflict, or commit unseen.
package kvtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// Bucket names used by the suite. The first four follow FORMAT.md; Hashed is
// created with the hash access method and its iteration order is not tested.
const (
	Meta      = "meta"
	Objects   = "objects"
	Refcounts = "refcounts"
	Garbage   = "garbage"
	Hashed    = "hashed"
)

// Opener opens (creating if opts.Create) a store of the backend under test.
// It fails t instead of returning an error.
type Opener = func(t testing.TB, opts kv.Options) kv.Store

// Buckets returns the bucket set the suite opens every store with: FORMAT.md's
// four buckets (file meta.db etc., prefixes m/o/r/g) plus the hash bucket
// "hashed" (file hashed.db, prefix h). Prefixes g and h are adjacent on
// purpose, so a LevelDB cursor that leaks across a prefix boundary is caught.
func Buckets() []kv.BucketSpec {
	return []kv.BucketSpec{
		{Name: Meta, File: "meta.db", Prefix: 'm'},
		{Name: Objects, File: "objects.db", Prefix: 'o', PageSize: 16384},
		{Name: Refcounts, File: "refcounts.db", Prefix: 'r'},
		{Name: Garbage, File: "garbage.db", Prefix: 'g'},
		{Name: Hashed, File: "hashed.db", Prefix: 'h', Hash: true},
	}
}

// Options returns the options the suite passes to open for dir: Create set,
// Buckets(), a small cache.
func Options(dir string) kv.Options {
	return kv.Options{Dir: dir, Create: true, Buckets: Buckets(), CacheSize: 8 << 20}
}

// ordered reports whether cursor order is specified for bucket.
func ordered(bucket string) bool { return bucket != Hashed }

// dataBuckets are the buckets the suite writes freely. Meta is left out of
// order/emptiness assertions because a backend may keep its own keys there
// (LevelDB: "backend").
var dataBuckets = []string{Objects, Refcounts, Garbage, Hashed}

type harness struct {
	open Opener
}

// fresh opens a new store in a fresh directory; it is closed at cleanup.
func (h *harness) fresh(t testing.TB) (kv.Store, string) {
	dir := t.TempDir()
	return h.reopen(t, dir, false), dir
}

// reopen opens dir again (read-only if ro); the store is closed at cleanup.
func (h *harness) reopen(t testing.TB, dir string, ro bool) kv.Store {
	t.Helper()
	opts := Options(dir)
	if ro {
		opts.Create = false
		opts.ReadOnly = true
	}
	s := h.open(t, opts)
	if s == nil {
		t.Fatalf("open %s returned a nil store", dir)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("cleanup close %s: %v", dir, err)
		}
	})
	return s
}

type testCase struct {
	name string
	fn   func(t *testing.T, h *harness)
}

var cases = []testCase{
	{"Basics", testBasics},
	{"NotFound", testNotFound},
	{"DeleteMissing", testDeleteMissing},
	{"EmptyBucketCursor", testEmptyBucketCursor},
	{"ReadYourWrites", testReadYourWrites},
	{"Ordering", testOrdering},
	{"OrderingInWriteTxn", testOrderingInWriteTxn},
	{"DeleteWhileIterating", testDeleteWhileIterating},
	{"BufferOwnership", testBufferOwnership},
	{"IsolationAbort", testIsolationAbort},
	{"IsolationCommit", testIsolationCommit},
	{"SnapshotRead", testSnapshotRead},
	{"RepeatableRead", testRepeatableRead},
	{"AbortDiscards", testAbortDiscards},
	{"Durability", testDurability},
	{"LargeValue", testLargeValue},
	{"EmptyKeyValue", testEmptyKeyValue},
	{"ManySmall", testManySmall},
	{"ConcurrentWriters", testConcurrentWriters},
	{"TxnDone", testTxnDone},
	{"ReadTxnRefusesWrites", testReadTxnRefusesWrites},
	{"Closed", testClosed},
	{"CloseWithOpenTxn", testCloseWithOpenTxn},
	{"BucketsIsolated", testBucketsIsolated},
	{"NoBucket", testNoBucket},
	{"FlushCheckpoint", testFlushCheckpoint},
	{"ReadOnlyOpen", testReadOnlyOpen},
	{"Backend", testBackend},
	{"Model", testModel},
	{"Getter", testGetter},
	{"BoundedGetter", testBoundedGetter},
}

// RunTests runs the conformance suite against the backend that open opens.
// Every case is a subtest; the whole suite takes well under a minute on a
// local disk.
func RunTests(t *testing.T, open Opener) {
	h := &harness{open: open}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, h) })
	}
}

// --- helpers ---

func ctxOf(t testing.TB) context.Context { return t.Context() }

func begin(t testing.TB, s kv.Store, writable bool) kv.Txn {
	t.Helper()
	tx, err := s.Begin(ctxOf(t), writable)
	if err != nil {
		t.Fatalf("begin(writable=%v): %v", writable, err)
	}
	return tx
}

func mustPut(t testing.TB, tx kv.Txn, bucket string, k, v []byte) {
	t.Helper()
	if err := tx.Put(bucket, k, v); err != nil {
		t.Fatalf("put %s %q: %v", bucket, k, err)
	}
}

func mustDel(t testing.TB, tx kv.Txn, bucket string, k []byte) {
	t.Helper()
	if err := tx.Delete(bucket, k); err != nil {
		t.Fatalf("delete %s %q: %v", bucket, k, err)
	}
}

func mustCommit(t testing.TB, tx kv.Txn, d kv.Durability) {
	t.Helper()
	if err := tx.Commit(d); err != nil {
		t.Fatalf("commit(%v): %v", d, err)
	}
}

// update runs fn in kv.Update with Sync and fails t on error.
func update(t testing.TB, s kv.Store, fn func(tx kv.Txn)) {
	t.Helper()
	if err := kv.Update(ctxOf(t), s, kv.Sync, func(tx kv.Txn) error { fn(tx); return nil }); err != nil {
		t.Fatalf("update: %v", err)
	}
}

// expectGet asserts that tx holds want under k (want nil: not found).
func expectGet(t testing.TB, tx kv.Txn, bucket string, k []byte, want []byte) {
	t.Helper()
	got, err := tx.Get(bucket, k)
	if want == nil {
		if !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("get %s %q: want ErrNotFound, got %q, %v", bucket, k, trunc(got), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("get %s %q: %v", bucket, k, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("get %s %q = %q, want %q", bucket, k, trunc(got), trunc(want))
	}
}

// expectView checks, in a fresh read transaction, that s holds want under k.
func expectView(t testing.TB, s kv.Store, bucket string, k []byte, want []byte) {
	t.Helper()
	tx := begin(t, s, false)
	defer tx.Abort()
	expectGet(t, tx, bucket, k, want)
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// model is the expected content of one bucket.
type model map[string]string

func (m model) clone() model {
	c := make(model, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m model) sorted() []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// walk collects a cursor walk: First/Next when fwd, else Last/Prev.
func walk(t testing.TB, c kv.Cursor, fwd bool, limit int) (keys []string, vals []string) {
	t.Helper()
	ok := false
	if fwd {
		ok = c.First()
	} else {
		ok = c.Last()
	}
	for ok {
		if !c.Valid() {
			t.Fatalf("cursor move returned true but Valid is false")
		}
		keys = append(keys, string(c.Key()))
		vals = append(vals, string(c.Value()))
		if len(keys) > limit {
			t.Fatalf("cursor walk longer than %d records (loop?)", limit)
		}
		if fwd {
			ok = c.Next()
		} else {
			ok = c.Prev()
		}
	}
	if c.Valid() {
		t.Fatalf("cursor move returned false but Valid is true")
	}
	if err := c.Err(); err != nil {
		t.Fatalf("cursor walk: %v", err)
	}
	return keys, vals
}

// checkCursor compares every cursor movement over bucket in tx with m.
func checkCursor(t testing.TB, tx kv.Txn, bucket string, m model) {
	t.Helper()
	c, err := tx.Cursor(bucket)
	if err != nil {
		t.Fatalf("cursor %s: %v", bucket, err)
	}
	defer c.Close()
	ks := m.sorted()
	limit := len(ks) + 10
	fk, fv := walk(t, c, true, limit)
	bk, bv := walk(t, c, false, limit)
	if !ordered(bucket) {
		checkSet(t, bucket, "First/Next", fk, fv, m)
		checkSet(t, bucket, "Last/Prev", bk, bv, m)
		return
	}
	if !equalStrings(fk, ks) {
		t.Fatalf("%s First/Next keys %q, want %q", bucket, short(fk), short(ks))
	}
	for i, k := range fk {
		if fv[i] != m[k] {
			t.Fatalf("%s First/Next value at %q = %q, want %q", bucket, k, trunc([]byte(fv[i])), trunc([]byte(m[k])))
		}
	}
	for i, j := 0, len(bk)-1; i < j; i, j = i+1, j-1 {
		bk[i], bk[j] = bk[j], bk[i]
		bv[i], bv[j] = bv[j], bv[i]
	}
	if !equalStrings(bk, ks) {
		t.Fatalf("%s Last/Prev keys (reversed) %q, want %q", bucket, short(bk), short(ks))
	}
	for i, k := range bk {
		if bv[i] != m[k] {
			t.Fatalf("%s Last/Prev value at %q = %q, want %q", bucket, k, bv[i], m[k])
		}
	}
	// Seek to every key and just past it, then step both ways.
	at := func(what string, ok bool, i int) {
		t.Helper()
		if i >= len(ks) || i < 0 {
			if ok || c.Valid() {
				t.Fatalf("%s %s: want end, cursor at %q", bucket, what, c.Key())
			}
			return
		}
		if !ok || !c.Valid() {
			t.Fatalf("%s %s: want %q, cursor invalid (err %v)", bucket, what, ks[i], c.Err())
		}
		if k := string(c.Key()); k != ks[i] {
			t.Fatalf("%s %s: at %q, want %q", bucket, what, k, ks[i])
		}
		if v := string(c.Value()); v != m[ks[i]] {
			t.Fatalf("%s %s: value %q, want %q", bucket, what, trunc([]byte(v)), trunc([]byte(m[ks[i]])))
		}
	}
	for i, k := range ks {
		at(fmt.Sprintf("Seek(%q)", k), c.Seek([]byte(k)), i)
		at(fmt.Sprintf("Seek(%q).Next", k), c.Next(), i+1)
		if i+1 < len(ks) {
			at(fmt.Sprintf("Seek(%q).Next.Prev", k), c.Prev(), i)
		}
		at(fmt.Sprintf("Seek(%q)", k+"\x00"), c.Seek([]byte(k+"\x00")), i+1)
		if i+1 < len(ks) {
			at(fmt.Sprintf("Seek(%q).Prev", k+"\x00"), c.Prev(), i)
			at(fmt.Sprintf("Seek(%q).Prev.Next", k+"\x00"), c.Next(), i+1)
		}
		if i > 0 {
			at(fmt.Sprintf("Seek(%q).Prev", k), func() bool { c.Seek([]byte(k)); return c.Prev() }(), i-1)
		}
	}
	for _, probe := range []string{"", "\x00", "\x7f", "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\xff"} {
		i := sort.SearchStrings(ks, probe)
		at(fmt.Sprintf("Seek(%q)", probe), c.Seek([]byte(probe)), i)
	}
	if len(ks) > 0 {
		at("First", c.First(), 0)
		at("Last", c.Last(), len(ks)-1)
	}
}

func checkSet(t testing.TB, bucket, how string, keys, vals []string, m model) {
	t.Helper()
	if len(keys) != len(m) {
		t.Fatalf("%s %s: %d records, want %d", bucket, how, len(keys), len(m))
	}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		if seen[k] {
			t.Fatalf("%s %s: key %q twice", bucket, how, k)
		}
		seen[k] = true
		want, ok := m[k]
		if !ok {
			t.Fatalf("%s %s: unexpected key %q", bucket, how, k)
		}
		if vals[i] != want {
			t.Fatalf("%s %s: value at %q = %q, want %q", bucket, how, k, vals[i], want)
		}
	}
}

// checkAll compares bucket in tx with m by Get of every key and by cursor.
func checkAll(t testing.TB, tx kv.Txn, bucket string, m model) {
	t.Helper()
	for k, v := range m {
		expectGet(t, tx, bucket, []byte(k), []byte(v))
	}
	checkCursor(t, tx, bucket, m)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func short(ks []string) []string {
	if len(ks) > 20 {
		return append(ks[:20:20], "...")
	}
	return ks
}

// edgeKeys are keys with 0x00/0xFF bytes, the empty key and keys that are
// prefixes of each other.
func edgeKeys() []string {
	return []string{
		"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "\x01",
		"a", "a\x00", "a\x00\x00", "a\xff", "ab", "abc", "abd", "b",
		"\x7f", "\x80", "\xfe\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff",
	}
}

// --- cases ---

func testBasics(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, b := range dataBuckets {
		tx := begin(t, s, true)
		mustPut(t, tx, b, []byte("k1"), []byte("v1"))
		mustPut(t, tx, b, []byte("k2"), []byte("v2"))
		mustCommit(t, tx, kv.Sync)
		expectView(t, s, b, []byte("k1"), []byte("v1"))
		expectView(t, s, b, []byte("k2"), []byte("v2"))

		update(t, s, func(tx kv.Txn) { mustPut(t, tx, b, []byte("k1"), []byte("v1bis")) })
		expectView(t, s, b, []byte("k1"), []byte("v1bis"))

		update(t, s, func(tx kv.Txn) { mustDel(t, tx, b, []byte("k2")) })
		expectView(t, s, b, []byte("k2"), nil)
		expectView(t, s, b, []byte("k1"), []byte("v1bis"))

		// Put after delete in one txn, delete after put in one txn.
		update(t, s, func(tx kv.Txn) {
			mustDel(t, tx, b, []byte("k1"))
			mustPut(t, tx, b, []byte("k1"), []byte("v1ter"))
			mustPut(t, tx, b, []byte("k3"), []byte("v3"))
			mustDel(t, tx, b, []byte("k3"))
		})
		expectView(t, s, b, []byte("k1"), []byte("v1ter"))
		expectView(t, s, b, []byte("k3"), nil)
		rt := begin(t, s, false)
		checkAll(t, rt, b, model{"k1": "v1ter"})
		rt.Abort()
	}
}

func testNotFound(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, b := range dataBuckets {
		expectView(t, s, b, []byte("missing"), nil)
		tx := begin(t, s, true)
		expectGet(t, tx, b, []byte("missing"), nil)
		mustPut(t, tx, b, []byte("x"), []byte("1"))
		mustDel(t, tx, b, []byte("x"))
		expectGet(t, tx, b, []byte("x"), nil)
		mustCommit(t, tx, kv.Sync)
		expectView(t, s, b, []byte("x"), nil)
	}
}

func testDeleteMissing(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, b := range dataBuckets {
		tx := begin(t, s, true)
		if err := tx.Delete(b, []byte("never")); err != nil {
			t.Fatalf("delete missing key in %s: %v", b, err)
		}
		if err := tx.Delete(b, nil); err != nil {
			t.Fatalf("delete missing empty key in %s: %v", b, err)
		}
		mustCommit(t, tx, kv.Sync)
	}
}

func testEmptyBucketCursor(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, w := range []bool{false, true} {
		tx := begin(t, s, w)
		for _, b := range dataBuckets {
			c, err := tx.Cursor(b)
			if err != nil {
				t.Fatalf("cursor %s: %v", b, err)
			}
			if c.First() || c.Last() || c.Valid() {
				t.Fatalf("empty %s: cursor found a record %q", b, c.Key())
			}
			if ordered(b) && (c.Seek(nil) || c.Seek([]byte("a"))) {
				t.Fatalf("empty %s: Seek found a record %q", b, c.Key())
			}
			if c.Next() || c.Prev() {
				t.Fatalf("empty %s: Next/Prev found a record", b)
			}
			if err := c.Err(); err != nil {
				t.Fatalf("empty %s: cursor err %v", b, err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("cursor close: %v", err)
			}
			checkCursor(t, tx, b, model{})
		}
		tx.Abort()
	}
}

func testReadYourWrites(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, b := range dataBuckets {
		update(t, s, func(tx kv.Txn) {
			mustPut(t, tx, b, []byte("keep"), []byte("old"))
			mustPut(t, tx, b, []byte("over"), []byte("old"))
			mustPut(t, tx, b, []byte("gone"), []byte("old"))
		})
		tx := begin(t, s, true)
		mustPut(t, tx, b, []byte("new"), []byte("fresh"))
		mustPut(t, tx, b, []byte("over"), []byte("new"))
		mustDel(t, tx, b, []byte("gone"))
		want := model{"keep": "old", "over": "new", "new": "fresh"}
		checkAll(t, tx, b, want)
		expectGet(t, tx, b, []byte("gone"), nil)
		// A second round of changes on top of the first.
		mustPut(t, tx, b, []byte("gone"), []byte("back"))
		mustDel(t, tx, b, []byte("new"))
		mustPut(t, tx, b, []byte("over"), []byte("newer"))
		want = model{"keep": "old", "over": "newer", "gone": "back"}
		checkAll(t, tx, b, want)
		mustCommit(t, tx, kv.Sync)
		rt := begin(t, s, false)
		checkAll(t, rt, b, want)
		rt.Abort()
	}
}

func testOrdering(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	m := model{}
	for i, k := range edgeKeys() {
		m[k] = fmt.Sprintf("v%d", i)
	}
	for _, b := range dataBuckets {
		update(t, s, func(tx kv.Txn) {
			for k, v := range m {
				mustPut(t, tx, b, []byte(k), []byte(v))
			}
		})
	}
	rt := begin(t, s, false)
	defer rt.Abort()
	for _, b := range dataBuckets {
		checkAll(t, rt, b, m)
	}
}

func testOrderingInWriteTxn(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	keys := edgeKeys()
	committed := model{}
	for i, k := range keys {
		if i%2 == 0 {
			committed[k] = fmt.Sprintf("c%d", i)
		}
	}
	for _, b := range dataBuckets {
		update(t, s, func(tx kv.Txn) {
			for k, v := range committed {
				mustPut(t, tx, b, []byte(k), []byte(v))
			}
		})
		// Mix: odd keys new in the txn, every 4th committed key deleted,
		// every 3rd overwritten.
		want := committed.clone()
		tx := begin(t, s, true)
		for i, k := range keys {
			switch {
			case i%2 == 1:
				want[k] = fmt.Sprintf("n%d", i)
				mustPut(t, tx, b, []byte(k), []byte(want[k]))
			case i%4 == 0:
				delete(want, k)
				mustDel(t, tx, b, []byte(k))
			case i%3 == 0:
				want[k] = fmt.Sprintf("o%d", i)
				mustPut(t, tx, b, []byte(k), []byte(want[k]))
			}
		}
		checkAll(t, tx, b, want)
		mustCommit(t, tx, kv.Sync)
		rt := begin(t, s, false)
		checkAll(t, rt, b, want)
		rt.Abort()
	}
}

func testDeleteWhileIterating(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, b := range dataBuckets {
		m := model{}
		update(t, s, func(tx kv.Txn) {
			for i := 0; i < 50; i++ {
				k := fmt.Sprintf("k%03d", i)
				m[k] = "v"
				mustPut(t, tx, b, []byte(k), []byte("v"))
			}
		})
		tx := begin(t, s, true)
		// Also put some records only in the txn.
		for i := 50; i < 60; i++ {
			k := fmt.Sprintf("k%03d", i)
			m[k] = "w"
			mustPut(t, tx, b, []byte(k), []byte("w"))
		}
		c, err := tx.Cursor(b)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for ok := c.First(); ok; ok = c.Next() {
			k := string(c.Key())
			if _, in := m[k]; !in {
				t.Fatalf("%s: cursor visited %q, deleted or unknown", b, k)
			}
			delete(m, k)
			seen++
			if err := tx.Delete(b, []byte(k)); err != nil {
				t.Fatalf("%s: delete %q while iterating: %v", b, k, err)
			}
			if seen > 100 {
				t.Fatalf("%s: cursor loops", b)
			}
		}
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if len(m) != 0 {
			t.Fatalf("%s: cursor skipped %d records while deleting", b, len(m))
		}
		checkCursor(t, tx, b, model{})
		mustCommit(t, tx, kv.Sync)
		rt := begin(t, s, false)
		checkCursor(t, rt, b, model{})
		rt.Abort()
	}
}

func testBufferOwnership(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	k := []byte("key")
	v := []byte("value")
	tx := begin(t, s, true)
	mustPut(t, tx, Objects, k, v)
	k[0], v[0] = 'X', 'X'
	expectGet(t, tx, Objects, []byte("key"), []byte("value"))
	got, _ := tx.Get(Objects, []byte("key"))
	got[0] = 'Y'
	expectGet(t, tx, Objects, []byte("key"), []byte("value"))
	c, err := tx.Cursor(Objects)
	if err != nil {
		t.Fatal(err)
	}
	if !c.First() {
		t.Fatal("cursor: no record")
	}
	ck, cv := c.Key(), c.Value()
	ck[0], cv[0] = 'Z', 'Z'
	if string(c.Key()) != "key" || string(c.Value()) != "value" {
		t.Fatalf("cursor Key/Value alias internal memory: %q %q", c.Key(), c.Value())
	}
	c.Close()
	mustCommit(t, tx, kv.Sync)
	expectView(t, s, Objects, []byte("key"), []byte("value"))
	expectView(t, s, Objects, []byte("Xey"), nil)
	rt := begin(t, s, false)
	got, _ = rt.Get(Objects, []byte("key"))
	got[0] = 'Y'
	expectGet(t, rt, Objects, []byte("key"), []byte("value"))
	rt.Abort()
}

// readResult is what an isolation reader saw.
type readResult struct {
	val     []byte
	err     error
	keys    []string
	curErr  error
	beginOK bool
}

// isolatedRead reads key k and scans bucket in a new read txn.
func isolatedRead(ctx context.Context, s kv.Store, bucket string, k []byte) readResult {
	var r readResult
	tx, err := s.Begin(ctx, false)
	if err != nil {
		r.err = err
		return r
	}
	defer tx.Abort()
	r.beginOK = true
	r.val, r.err = tx.Get(bucket, k)
	c, err := tx.Cursor(bucket)
	if err != nil {
		r.curErr = err
		return r
	}
	defer c.Close()
	for ok := c.First(); ok; ok = c.Next() {
		r.keys = append(r.keys, string(c.Key()))
	}
	r.curErr = c.Err()
	return r
}

// checkIsolated asserts that r saw no trace of the uncommitted "dirty" key
// and the committed value "old" (or a conflict).
func checkIsolated(t *testing.T, r readResult, oldVal []byte) {
	t.Helper()
	if !r.beginOK {
		if !errors.Is(r.err, kv.ErrConflict) {
			t.Fatalf("reader begin: %v (want success or ErrConflict)", r.err)
		}
		return
	}
	switch {
	case r.err == nil && oldVal == nil:
		t.Fatalf("reader saw uncommitted record %q", r.val)
	case r.err == nil:
		if !bytes.Equal(r.val, oldVal) {
			t.Fatalf("reader saw uncommitted value %q (committed %q)", r.val, oldVal)
		}
	case errors.Is(r.err, kv.ErrConflict):
	case oldVal == nil && errors.Is(r.err, kv.ErrNotFound):
	default:
		t.Fatalf("reader get: %v", r.err)
	}
	if r.curErr != nil && !errors.Is(r.curErr, kv.ErrConflict) {
		t.Fatalf("reader cursor: %v", r.curErr)
	}
	for _, k := range r.keys {
		if k == "dirty" {
			t.Fatalf("reader cursor saw uncommitted key %q", k)
		}
	}
}

func isolationSetup(t *testing.T, h *harness) (kv.Store, kv.Txn) {
	s, _ := h.fresh(t)
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("shared"), []byte("old")) })
	w := begin(t, s, true)
	mustPut(t, w, Objects, []byte("shared"), []byte("new"))
	mustPut(t, w, Objects, []byte("dirty"), []byte("new"))
	return s, w
}

func testIsolationAbort(t *testing.T, h *harness) {
	s, w := isolationSetup(t, h)
	ctx, cancel := context.WithTimeout(ctxOf(t), 20*time.Second)
	defer cancel()
	type res struct {
		r   readResult
		old []byte
	}
	done := make(chan res, 2)
	go func() { done <- res{isolatedRead(ctx, s, Objects, []byte("shared")), []byte("old")} }()
	go func() { done <- res{isolatedRead(ctx, s, Objects, []byte("dirty")), nil} }()
	got := 0
	timer := time.NewTimer(300 * time.Millisecond)
	defer timer.Stop()
wait:
	for got < 2 {
		select {
		case r := <-done:
			got++
			checkIsolated(t, r.r, r.old)
		case <-timer.C:
			break wait // readers blocked by the writer: allowed
		}
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("abort: %v", err)
	}
	for ; got < 2; got++ {
		select {
		case r := <-done:
			checkIsolated(t, r.r, r.old)
		case <-ctx.Done():
			t.Fatal("reader still blocked 20 s after the writer aborted")
		}
	}
	rt := begin(t, s, false)
	checkAll(t, rt, Objects, model{"shared": "old"})
	rt.Abort()
}

func testIsolationCommit(t *testing.T, h *harness) {
	s, w := isolationSetup(t, h)
	ctx, cancel := context.WithTimeout(ctxOf(t), 20*time.Second)
	defer cancel()
	done := make(chan readResult, 1)
	go func() { done <- isolatedRead(ctx, s, Objects, []byte("shared")) }()
	blocked := false
	select {
	case r := <-done:
		checkIsolated(t, r, []byte("old"))
	case <-time.After(300 * time.Millisecond):
		blocked = true
	}
	mustCommit(t, w, kv.Sync)
	if blocked {
		// Having waited for the writer, the reader may see its commit.
		select {
		case r := <-done:
			if r.beginOK && r.err != nil && !errors.Is(r.err, kv.ErrConflict) {
				t.Fatalf("blocked reader: %v", r.err)
			}
		case <-ctx.Done():
			t.Fatal("reader still blocked 20 s after the writer committed")
		}
	}
	rt := begin(t, s, false)
	checkAll(t, rt, Objects, model{"shared": "new", "dirty": "new"})
	rt.Abort()
}

// testSnapshotRead: a read txn begun before a commit either keeps seeing
// the old state, or (for locking backends) the writer has to wait; in no
// case does a read txn see a half-applied commit.
func testSnapshotRead(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	update(t, s, func(tx kv.Txn) {
		mustPut(t, tx, Objects, []byte("a"), []byte("1"))
		mustPut(t, tx, Refcounts, []byte("a"), []byte("1"))
	})
	ctx, cancel := context.WithTimeout(ctxOf(t), 20*time.Second)
	defer cancel()
	// Writer in another goroutine moves both buckets to "2" atomically.
	errc := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(errc)
		for i := 2; i < 40; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := []byte(fmt.Sprint(i))
			err := kv.Update(ctx, s, kv.NoSync, func(tx kv.Txn) error {
				if err := tx.Put(Objects, []byte("a"), v); err != nil {
					return err
				}
				return tx.Put(Refcounts, []byte("a"), v)
			})
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := 0; i < 40; i++ {
		err := kv.View(ctx, s, func(tx kv.Txn) error {
			a, err := tx.Get(Objects, []byte("a"))
			if err != nil {
				return err
			}
			b, err := tx.Get(Refcounts, []byte("a"))
			if err != nil {
				return err
			}
			if !bytes.Equal(a, b) {
				return fmt.Errorf("read txn saw a half-applied commit: objects %q, refcounts %q", a, b)
			}
			return nil
		})
		if err != nil {
			close(stop)
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-errc; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// testRepeatableRead: a read txn that read a record reads the same value
// again (and the same cursor walk) while another goroutine commits a change
// to it; the writer may wait for the reader, conflict and retry, or commit.
func testRepeatableRead(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	update(t, s, func(tx kv.Txn) {
		mustPut(t, tx, Objects, []byte("a"), []byte("1"))
		mustPut(t, tx, Objects, []byte("b"), []byte("1"))
	})
	ctx, cancel := context.WithTimeout(ctxOf(t), 20*time.Second)
	defer cancel()
	rt := begin(t, s, false)
	expectGet(t, rt, Objects, []byte("a"), []byte("1"))
	checkCursor(t, rt, Objects, model{"a": "1", "b": "1"})
	done := make(chan error, 1)
	go func() {
		done <- kv.Update(ctx, s, kv.Sync, func(tx kv.Txn) error {
			if err := tx.Put(Objects, []byte("a"), []byte("2")); err != nil {
				return err
			}
			if err := tx.Delete(Objects, []byte("b")); err != nil {
				return err
			}
			return tx.Put(Objects, []byte("c"), []byte("2"))
		})
	}()
	var werr error
	finished := false
	select {
	case werr = <-done:
		finished = true
	case <-time.After(300 * time.Millisecond):
	}
	expectGet(t, rt, Objects, []byte("a"), []byte("1"))
	checkCursor(t, rt, Objects, model{"a": "1", "b": "1"})
	rt.Abort()
	if !finished {
		werr = <-done
	}
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	rt = begin(t, s, false)
	checkAll(t, rt, Objects, model{"a": "2", "c": "2"})
	rt.Abort()
}

func testAbortDiscards(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("a"), []byte("1")) })
	tx := begin(t, s, true)
	mustPut(t, tx, Objects, []byte("a"), []byte("2"))
	mustPut(t, tx, Objects, []byte("b"), []byte("2"))
	mustPut(t, tx, Hashed, []byte("b"), []byte("2"))
	if err := tx.Abort(); err != nil {
		t.Fatalf("abort: %v", err)
	}
	rt := begin(t, s, false)
	checkAll(t, rt, Objects, model{"a": "1"})
	checkAll(t, rt, Hashed, model{})
	rt.Abort()
	// kv.Update aborts when fn fails.
	boom := errors.New("boom")
	err := kv.Update(ctxOf(t), s, kv.Sync, func(tx kv.Txn) error {
		if err := tx.Delete(Objects, []byte("a")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update returned %v, want boom", err)
	}
	expectView(t, s, Objects, []byte("a"), []byte("1"))
	// A new writer after an abort works (locks were released).
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("c"), []byte("3")) })
	expectView(t, s, Objects, []byte("c"), []byte("3"))
}

func testDurability(t *testing.T, h *harness) {
	for _, d := range []kv.Durability{kv.Sync, kv.WriteNoSync, kv.NoSync} {
		t.Run(d.String(), func(t *testing.T) {
			dir := t.TempDir()
			s := h.reopen(t, dir, false)
			tx := begin(t, s, true)
			for _, b := range dataBuckets {
				mustPut(t, tx, b, []byte("k-"+d.String()), []byte("v-"+d.String()))
			}
			mustCommit(t, tx, d)
			// A second, separate commit.
			tx = begin(t, s, true)
			mustPut(t, tx, Objects, []byte("second"), []byte("2"))
			mustDel(t, tx, Garbage, []byte("k-"+d.String()))
			mustCommit(t, tx, d)
			if err := s.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			s = h.reopen(t, dir, false)
			rt := begin(t, s, false)
			for _, b := range dataBuckets {
				want := []byte("v-" + d.String())
				if b == Garbage {
					want = nil
				}
				expectGet(t, rt, b, []byte("k-"+d.String()), want)
			}
			expectGet(t, rt, Objects, []byte("second"), []byte("2"))
			rt.Abort()
		})
	}
}

func testLargeValue(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	big := make([]byte, 16<<20+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(big); i += 8 {
		binary.LittleEndian.PutUint64(big[i:], r.Uint64())
	}
	big[len(big)-1] = 0xAB
	tx := begin(t, s, true)
	mustPut(t, tx, Objects, []byte("big"), big)
	mustPut(t, tx, Objects, []byte("small"), []byte("s"))
	expectGet(t, tx, Objects, []byte("big"), big)
	mustCommit(t, tx, kv.Sync)
	check := func(s kv.Store) {
		rt := begin(t, s, false)
		defer rt.Abort()
		expectGet(t, rt, Objects, []byte("big"), big)
		c, err := rt.Cursor(Objects)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.Seek([]byte("big")) || !bytes.Equal(c.Value(), big) {
			t.Fatalf("cursor value of big record differs")
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(h.reopen(t, dir, false))
}

func testEmptyKeyValue(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	for _, b := range dataBuckets {
		update(t, s, func(tx kv.Txn) {
			mustPut(t, tx, b, []byte{}, []byte("empty-key"))
			mustPut(t, tx, b, []byte("empty-value"), []byte{})
			mustPut(t, tx, b, []byte("nil-value"), nil)
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.reopen(t, dir, false)
	want := model{"": "empty-key", "empty-value": "", "nil-value": ""}
	rt := begin(t, s, false)
	for _, b := range dataBuckets {
		got, err := rt.Get(b, nil)
		if err != nil || string(got) != "empty-key" {
			t.Fatalf("%s get nil key: %q, %v", b, got, err)
		}
		got, err = rt.Get(b, []byte("empty-value"))
		if err != nil || len(got) != 0 {
			t.Fatalf("%s get empty value: %q, %v", b, got, err)
		}
		checkAll(t, rt, b, want)
	}
	rt.Abort()
	update(t, s, func(tx kv.Txn) { mustDel(t, tx, Objects, nil) })
	expectView(t, s, Objects, []byte{}, nil)
	expectView(t, s, Refcounts, []byte{}, []byte("empty-key"))
}

func key8(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

func testManySmall(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	const n, batch = 100_000, 10_000
	val := func(i uint64) []byte { return []byte(fmt.Sprintf("value-%09d", i)) }
	// Insert in a scattered order so that backends do real splits.
	for start := 0; start < n; start += batch {
		tx := begin(t, s, true)
		for j := start; j < start+batch; j++ {
			i := uint64(j*7919) % n
			mustPut(t, tx, Objects, key8(i), val(i))
		}
		mustCommit(t, tx, kv.NoSync)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	check := func(s kv.Store) {
		rt := begin(t, s, false)
		defer rt.Abort()
		c, err := rt.Cursor(Objects)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var i uint64
		for ok := c.First(); ok; ok = c.Next() {
			if !bytes.Equal(c.Key(), key8(i)) || !bytes.Equal(c.Value(), val(i)) {
				t.Fatalf("record %d: key %x value %q", i, c.Key(), c.Value())
			}
			i++
		}
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("cursor saw %d records, want %d", i, n)
		}
		for i := uint64(0); i < n; i += 997 {
			expectGet(t, rt, Objects, key8(i), val(i))
		}
		expectGet(t, rt, Objects, key8(n), nil)
	}
	check(s)
	// Delete every other record in one txn.
	tx := begin(t, s, true)
	for i := uint64(0); i < n; i += 2 {
		mustDel(t, tx, Objects, key8(i))
	}
	mustCommit(t, tx, kv.Sync)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.reopen(t, dir, false)
	rt := begin(t, s, false)
	defer rt.Abort()
	c, err := rt.Cursor(Objects)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	i := uint64(1)
	for ok := c.First(); ok; ok = c.Next() {
		if !bytes.Equal(c.Key(), key8(i)) {
			t.Fatalf("after deletes: key %x, want %x", c.Key(), key8(i))
		}
		i += 2
	}
	if i != n+1 {
		t.Fatalf("after deletes: walk ended before %d", i)
	}
}

func testConcurrentWriters(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	const writers, incs, counters = 8, 40, 3
	ctx := ctxOf(t)
	incr := func(tx kv.Txn, bucket string, k []byte) error {
		var n uint64
		v, err := tx.Get(bucket, k)
		switch {
		case err == nil:
			if len(v) != 8 {
				return fmt.Errorf("counter %q has %d bytes", k, len(v))
			}
			n = binary.BigEndian.Uint64(v)
		case errors.Is(err, kv.ErrNotFound):
		default:
			return err
		}
		return tx.Put(bucket, k, key8(n+1))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < incs; i++ {
				c := []byte(fmt.Sprintf("c%d", (w+i)%counters))
				err := kv.Update(ctx, s, kv.NoSync, func(tx kv.Txn) error {
					if err := incr(tx, Refcounts, []byte("total")); err != nil {
						return err
					}
					return incr(tx, Refcounts, c)
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d increment %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	rt := begin(t, s, false)
	defer rt.Abort()
	expectGet(t, rt, Refcounts, []byte("total"), key8(writers*incs))
	var sum uint64
	for c := 0; c < counters; c++ {
		v, err := rt.Get(Refcounts, []byte(fmt.Sprintf("c%d", c)))
		if err != nil {
			t.Fatal(err)
		}
		sum += binary.BigEndian.Uint64(v)
	}
	if sum != writers*incs {
		t.Fatalf("counters sum to %d, want %d", sum, writers*incs)
	}
}

func expectErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func testTxnDone(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, end := range []string{"commit", "abort"} {
		for _, writable := range []bool{true, false} {
			tx := begin(t, s, writable)
			if end == "commit" {
				if writable {
					mustPut(t, tx, Objects, []byte("x"), []byte("1"))
				}
				if err := tx.Commit(kv.Sync); err != nil {
					t.Fatalf("commit (writable=%v): %v", writable, err)
				}
			} else if err := tx.Abort(); err != nil {
				t.Fatalf("abort: %v", err)
			}
			what := fmt.Sprintf("after %s (writable=%v)", end, writable)
			_, err := tx.Get(Objects, []byte("x"))
			expectErr(t, what+": Get", err, kv.ErrTxnDone)
			expectErr(t, what+": Put", tx.Put(Objects, []byte("x"), []byte("2")), kv.ErrTxnDone)
			expectErr(t, what+": Delete", tx.Delete(Objects, []byte("x")), kv.ErrTxnDone)
			_, err = tx.Cursor(Objects)
			expectErr(t, what+": Cursor", err, kv.ErrTxnDone)
			expectErr(t, what+": Commit", tx.Commit(kv.Sync), kv.ErrTxnDone)
			if err := tx.Abort(); err != nil {
				t.Fatalf("%s: Abort = %v, want nil", what, err)
			}
			if err := tx.Abort(); err != nil {
				t.Fatalf("%s: second Abort = %v, want nil", what, err)
			}
		}
	}
	expectView(t, s, Objects, []byte("x"), []byte("1"))
}

func testReadTxnRefusesWrites(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("x"), []byte("1")) })
	tx := begin(t, s, false)
	expectErr(t, "Put in read txn", tx.Put(Objects, []byte("x"), []byte("2")), kv.ErrReadOnly)
	expectErr(t, "Delete in read txn", tx.Delete(Objects, []byte("x")), kv.ErrReadOnly)
	expectGet(t, tx, Objects, []byte("x"), []byte("1"))
	if err := tx.Commit(kv.Sync); err != nil {
		t.Fatalf("commit of read txn: %v", err)
	}
	expectView(t, s, Objects, []byte("x"), []byte("1"))
}

func testClosed(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("x"), []byte("1")) })
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, w := range []bool{false, true} {
		_, err := s.Begin(ctxOf(t), w)
		expectErr(t, fmt.Sprintf("Begin(%v) after Close", w), err, kv.ErrClosed)
	}
	expectErr(t, "Flush after Close", s.Flush(), kv.ErrClosed)
	expectErr(t, "Checkpoint after Close", s.Checkpoint(ctxOf(t), false), kv.ErrClosed)
	err := kv.Update(ctxOf(t), s, kv.Sync, func(kv.Txn) error { return nil })
	expectErr(t, "Update after Close", err, kv.ErrClosed)
	if s.Backend() == "" {
		t.Fatal("Backend() empty after close")
	}
}

func testCloseWithOpenTxn(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("x"), []byte("1")) })
	w := begin(t, s, true)
	mustPut(t, w, Objects, []byte("x"), []byte("uncommitted"))
	r := begin(t, s, false)
	rc, err := r.Cursor(Objects)
	if err != nil {
		t.Fatal(err)
	}
	rc.First()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("close with open txns: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close blocked for 20 s by open transactions")
	}
	for name, tx := range map[string]kv.Txn{"write": w, "read": r} {
		_, err := tx.Get(Objects, []byte("x"))
		if !errors.Is(err, kv.ErrTxnDone) && !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("%s txn Get after store Close: %v, want ErrTxnDone or ErrClosed", name, err)
		}
		if err := tx.Commit(kv.Sync); !errors.Is(err, kv.ErrTxnDone) && !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("%s txn Commit after store Close: %v, want ErrTxnDone or ErrClosed", name, err)
		}
		if err := tx.Abort(); err != nil {
			t.Fatalf("%s txn Abort after store Close: %v", name, err)
		}
	}
	rc.Next() // must not crash
	rc.Close()
	s = h.reopen(t, dir, false)
	expectView(t, s, Objects, []byte("x"), []byte("1"))
}

func testBucketsIsolated(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	models := map[string]model{}
	update(t, s, func(tx kv.Txn) {
		for i, b := range dataBuckets {
			m := model{}
			for _, k := range edgeKeys() {
				m[k] = fmt.Sprintf("%s-%d", b, i)
				mustPut(t, tx, b, []byte(k), []byte(m[k]))
			}
			models[b] = m
		}
	})
	update(t, s, func(tx kv.Txn) {
		mustDel(t, tx, Objects, []byte("a"))
		mustDel(t, tx, Garbage, []byte("\xff\xff"))
		mustPut(t, tx, Refcounts, []byte("only-r"), []byte("r"))
	})
	delete(models[Objects], "a")
	delete(models[Garbage], "\xff\xff")
	models[Refcounts]["only-r"] = "r"
	for _, w := range []bool{false, true} {
		tx := begin(t, s, w)
		for _, b := range dataBuckets {
			checkAll(t, tx, b, models[b])
		}
		tx.Abort()
	}
	// Meta holds none of these keys (a backend may keep its own there).
	rt := begin(t, s, false)
	defer rt.Abort()
	c, err := rt.Cursor(Meta)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for ok := c.First(); ok; ok = c.Next() {
		if _, in := models[Objects][string(c.Key())]; in {
			t.Fatalf("meta bucket shows key %q of another bucket", c.Key())
		}
	}
}

func testNoBucket(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	for _, w := range []bool{true, false} {
		tx := begin(t, s, w)
		_, err := tx.Get("nosuch", []byte("k"))
		expectErr(t, "Get", err, kv.ErrNoBucket)
		_, err = tx.Cursor("nosuch")
		expectErr(t, "Cursor", err, kv.ErrNoBucket)
		if w {
			expectErr(t, "Put", tx.Put("nosuch", []byte("k"), []byte("v")), kv.ErrNoBucket)
			expectErr(t, "Delete", tx.Delete("nosuch", []byte("k")), kv.ErrNoBucket)
		}
		_, err = tx.Get("", []byte("k"))
		expectErr(t, "Get of bucket \"\"", err, kv.ErrNoBucket)
		tx.Abort()
	}
}

func testFlushCheckpoint(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	if err := s.Flush(); err != nil {
		t.Fatalf("flush of empty store: %v", err)
	}
	if err := s.Checkpoint(ctxOf(t), false); err != nil {
		t.Fatalf("checkpoint of empty store: %v", err)
	}
	for i := 0; i < 3; i++ {
		tx := begin(t, s, true)
		mustPut(t, tx, Objects, key8(uint64(i)), []byte("v"))
		mustCommit(t, tx, kv.NoSync)
		if err := s.Flush(); err != nil {
			t.Fatalf("flush: %v", err)
		}
		if err := s.Checkpoint(ctxOf(t), i == 2); err != nil {
			t.Fatalf("checkpoint(removeLogs=%v): %v", i == 2, err)
		}
	}
	// Flush concurrently with a writer.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if err := s.Flush(); err != nil {
				t.Errorf("concurrent flush: %v", err)
				return
			}
		}
	}()
	for i := 3; i < 23; i++ {
		update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, key8(uint64(i)), []byte("v")) })
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.reopen(t, dir, false)
	rt := begin(t, s, false)
	defer rt.Abort()
	for i := 0; i < 23; i++ {
		expectGet(t, rt, Objects, key8(uint64(i)), []byte("v"))
	}
}

func testReadOnlyOpen(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	update(t, s, func(tx kv.Txn) {
		mustPut(t, tx, Objects, []byte("x"), []byte("1"))
		mustPut(t, tx, Hashed, []byte("y"), []byte("2"))
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := h.reopen(t, dir, true)
	rt := begin(t, ro, false)
	checkAll(t, rt, Objects, model{"x": "1"})
	checkAll(t, rt, Hashed, model{"y": "2"})
	rt.Abort()
	tx, err := ro.Begin(ctxOf(t), true)
	if err == nil {
		err = tx.Put(Objects, []byte("x"), []byte("changed"))
		if err == nil {
			err = tx.Commit(kv.Sync)
		}
		tx.Abort()
	}
	expectErr(t, "write on read-only store", err, kv.ErrReadOnly)
	err = kv.Update(ctxOf(t), ro, kv.Sync, func(tx kv.Txn) error {
		return tx.Put(Objects, []byte("x"), []byte("changed"))
	})
	expectErr(t, "kv.Update on read-only store", err, kv.ErrReadOnly)
	if err := ro.Flush(); err != nil && !errors.Is(err, kv.ErrReadOnly) {
		t.Fatalf("flush of read-only store: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	s = h.reopen(t, dir, false)
	expectView(t, s, Objects, []byte("x"), []byte("1"))
}

func testBackend(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	switch b := s.Backend(); b {
	case "bdb", "leveldb":
	default:
		if b == "" || strings.ContainsAny(b, " \t\n") {
			t.Fatalf("Backend() = %q, want a short name", b)
		}
	}
}

// testModel runs random transactions against the store and a map model.
func testModel(t *testing.T, h *harness) {
	s, dir := h.fresh(t)
	r := rand.New(rand.NewPCG(42, 7))
	buckets := []string{Objects, Garbage, Hashed}
	committed := map[string]model{}
	for _, b := range buckets {
		committed[b] = model{}
	}
	const txns = 150
	for n := 0; n < txns; n++ {
		if n == txns/2 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = h.reopen(t, dir, false)
		}
		if r.IntN(5) == 0 {
			checkModel(t, s, buckets, committed)
			continue
		}
		if cur, ok := modelTxn(t, s, r, n, buckets, committed); ok {
			committed = cur
		}
	}
	checkModel(t, s, buckets, committed)
}

// randModelKey returns a random key of 0 to 3 bytes from a small alphabet
// with the edge bytes, so that keys collide and sort around prefixes.
func randModelKey(r *rand.Rand) []byte {
	alphabet := []byte{0x00, 0x01, 'a', 'b', 0x7f, 0xfe, 0xff}
	k := make([]byte, r.IntN(4))
	for i := range k {
		k[i] = alphabet[r.IntN(len(alphabet))]
	}
	return k
}

// checkModel checks in a read transaction that each of buckets holds
// exactly its model in committed.
func checkModel(t *testing.T, s kv.Store, buckets []string, committed map[string]model) {
	t.Helper()
	rt := begin(t, s, false)
	defer rt.Abort()
	for _, b := range buckets {
		checkAll(t, rt, b, committed[b])
	}
}

// modelTxn runs the random write transaction number n over a copy of the
// committed models of buckets, checking as it goes; it reports whether it
// committed (and so the copy is the new committed state) or aborted.
func modelTxn(t *testing.T, s kv.Store, r *rand.Rand, n int, buckets []string, committed map[string]model) (map[string]model, bool) {
	t.Helper()
	cur := map[string]model{}
	for _, b := range buckets {
		cur[b] = committed[b].clone()
	}
	tx := begin(t, s, true)
	// A cursor on Objects stays open across the txn's writes: each of
	// its moves must reflect the txn's state at the time of the move.
	pc := newPersistentCursor(t, tx, Objects)
	ops := 1 + r.IntN(30)
	for i := 0; i < ops; i++ {
		b := buckets[r.IntN(len(buckets))]
		k := randModelKey(r)
		for j := r.IntN(3); j > 0; j-- {
			pc.step(t, r, cur[Objects], randModelKey(r))
		}
		modelOp(t, r, tx, b, k, fmt.Sprintf("v%d.%d", n, i), cur[b])
	}
	pc.close()
	if r.IntN(4) == 0 {
		if err := tx.Abort(); err != nil {
			t.Fatal(err)
		}
		return nil, false
	}
	for _, b := range buckets {
		checkAll(t, tx, b, cur[b])
	}
	mustCommit(t, tx, kv.Durability(r.IntN(3)))
	return cur, true
}

// modelOp does one random operation on key k of bucket b in tx and in m,
// b's model: a put of v, a delete, a get, or a cursor walk.
func modelOp(t *testing.T, r *rand.Rand, tx kv.Txn, b string, k []byte, v string, m model) {
	t.Helper()
	switch op := r.IntN(10); {
	case op < 5:
		mustPut(t, tx, b, k, []byte(v))
		m[string(k)] = v
	case op < 8:
		mustDel(t, tx, b, k)
		delete(m, string(k))
	case op < 9:
		want, ok := m[string(k)]
		if ok {
			expectGet(t, tx, b, k, []byte(want))
		} else {
			expectGet(t, tx, b, k, nil)
		}
	default:
		if ordered(b) {
			randomWalk(t, r, tx, b, m, randModelKey(r))
		} else {
			checkCursor(t, tx, b, m)
		}
	}
}

// randomWalk seeks to probe and takes random steps, checking each position.
func randomWalk(t testing.TB, r *rand.Rand, tx kv.Txn, bucket string, m model, probe []byte) {
	t.Helper()
	ks := m.sorted()
	c, err := tx.Cursor(bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	i := sort.SearchStrings(ks, string(probe))
	ok := c.Seek(probe)
	for step := 0; step < 12; step++ {
		if i < 0 || i >= len(ks) {
			if ok || c.Valid() {
				t.Fatalf("%s walk from %q: want end, at %q", bucket, probe, c.Key())
			}
			return
		}
		if !ok || string(c.Key()) != ks[i] || string(c.Value()) != m[ks[i]] {
			t.Fatalf("%s walk from %q step %d: at %q/%q (ok %v), want %q/%q", bucket, probe, step, c.Key(), c.Value(), ok, ks[i], m[ks[i]])
		}
		if r.IntN(2) == 0 {
			ok, i = c.Next(), i+1
		} else {
			ok, i = c.Prev(), i-1
		}
	}
}

// persistentCursor is a cursor kept open while its transaction writes.
type persistentCursor struct {
	c   kv.Cursor
	at  string // key of the current record when valid
	ok  bool
	tag string
}

func newPersistentCursor(t testing.TB, tx kv.Txn, bucket string) *persistentCursor {
	t.Helper()
	c, err := tx.Cursor(bucket)
	if err != nil {
		t.Fatal(err)
	}
	return &persistentCursor{c: c, tag: bucket}
}

func (p *persistentCursor) close() { p.c.Close() }

// step makes one random move and checks it against m, the bucket's content
// now: Next goes to the first key greater than the previous position,
// Prev to the last smaller one, even if records were written meanwhile.
func (p *persistentCursor) step(t testing.TB, r *rand.Rand, m model, probe []byte) {
	t.Helper()
	ks := m.sorted()
	var want int
	var what string
	var ok bool
	switch {
	case !p.ok || r.IntN(5) == 0:
		what = fmt.Sprintf("Seek(%q)", probe)
		want = sort.SearchStrings(ks, string(probe))
		ok = p.c.Seek(probe)
	case r.IntN(2) == 0:
		what = fmt.Sprintf("Next from %q", p.at)
		want = sort.SearchStrings(ks, p.at)
		if want < len(ks) && ks[want] == p.at {
			want++
		}
		ok = p.c.Next()
	default:
		what = fmt.Sprintf("Prev from %q", p.at)
		want = sort.SearchStrings(ks, p.at) - 1
		ok = p.c.Prev()
	}
	if want < 0 || want >= len(ks) {
		if ok || p.c.Valid() {
			t.Fatalf("%s persistent cursor %s: want end, at %q", p.tag, what, p.c.Key())
		}
		p.ok = false
		return
	}
	if !ok || string(p.c.Key()) != ks[want] || string(p.c.Value()) != m[ks[want]] {
		t.Fatalf("%s persistent cursor %s: at %q/%q (ok %v), want %q/%q", p.tag, what, p.c.Key(), p.c.Value(), ok, ks[want], m[ks[want]])
	}
	p.ok, p.at = true, ks[want]
}

// testGetter: a store implementing kv.Getter reads committed values outside
// a transaction, reports missing keys and unknown buckets, and never shows
// a write that is not committed (the reader may wait for the writer to end).
func testGetter(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	g, ok := s.(kv.Getter)
	if !ok {
		return // optional interface: nothing to check
	}
	update(t, s, func(tx kv.Txn) { mustPut(t, tx, Objects, []byte("k"), []byte("v1")) })
	if v, err := g.Get(Objects, []byte("k")); err != nil || string(v) != "v1" {
		t.Fatalf("Getter.Get committed: %q %v", v, err)
	}
	if _, err := g.Get(Objects, []byte("missing")); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Getter.Get missing: %v", err)
	}
	if _, err := g.Get("nosuch", []byte("k")); !errors.Is(err, kv.ErrNoBucket) {
		t.Fatalf("Getter.Get unknown bucket: %v", err)
	}
	tx := begin(t, s, true)
	mustPut(t, tx, Objects, []byte("k"), []byte("uncommitted"))
	got := make(chan string, 1)
	go func() {
		v, err := g.Get(Objects, []byte("k"))
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(v)
	}()
	select {
	case v := <-got:
		if v != "v1" {
			t.Fatalf("Getter.Get during an uncommitted write: %q", v)
		}
		tx.Abort()
	case <-time.After(200 * time.Millisecond):
		// Blocked by the writer's lock (Berkeley DB): it must see v1 once the writer aborts.
		tx.Abort()
		if v := <-got; v != "v1" {
			t.Fatalf("Getter.Get after the writer aborted: %q", v)
		}
	}
}

// testBoundedGetter: a value longer than the bound is refused unread with
// its size (*kv.ValueSizeError, kv.ErrValueTooLarge), and read in full with
// a bound that takes it; misses and unknown buckets fail as in Get.
func testBoundedGetter(t *testing.T, h *harness) {
	s, _ := h.fresh(t)
	g, ok := s.(kv.BoundedGetter)
	if !ok {
		return // optional interface: nothing to check
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 12345) // 197520 bytes: overflow pages
	for _, bucket := range []string{Objects, Hashed} {
		update(t, s, func(tx kv.Txn) {
			mustPut(t, tx, bucket, []byte("big"), big)
			mustPut(t, tx, bucket, []byte("small"), []byte("s"))
		})
		v, err := g.GetBounded(bucket, []byte("big"), 1000)
		var se *kv.ValueSizeError
		if !errors.As(err, &se) || !errors.Is(err, kv.ErrValueTooLarge) || v != nil {
			t.Fatalf("%s: GetBounded over the bound: %d bytes, %v; want a *kv.ValueSizeError", bucket, len(v), err)
		}
		if se.Size != len(big) || se.Max != 1000 || se.Bucket != bucket {
			t.Fatalf("%s: ValueSizeError %+v: want size %d, max 1000", bucket, se, len(big))
		}
		for _, max := range []int{len(big), len(big) + 1, 1 << 30} {
			if v, err := g.GetBounded(bucket, []byte("big"), max); err != nil || !bytes.Equal(v, big) {
				t.Fatalf("%s: GetBounded(%d): %d bytes, %v", bucket, max, len(v), err)
			}
		}
		// A short value may be returned over its bound (it fits the
		// backend's bounded buffer) or refused; never a wrong one.
		if v, err := g.GetBounded(bucket, []byte("small"), 0); err == nil && string(v) != "s" || err != nil && !errors.As(err, &se) {
			t.Fatalf("%s: GetBounded(small, 0): %q, %v", bucket, v, err)
		}
		if v, err := g.GetBounded(bucket, []byte("small"), 1); err != nil || string(v) != "s" {
			t.Fatalf("%s: GetBounded(small, 1): %q, %v", bucket, v, err)
		}
		if _, err := g.GetBounded(bucket, []byte("missing"), 10); !errors.Is(err, kv.ErrNotFound) {
			t.Fatalf("%s: GetBounded missing: %v", bucket, err)
		}
	}
	if _, err := g.GetBounded("nosuch", []byte("k"), 10); !errors.Is(err, kv.ErrNoBucket) {
		t.Fatalf("GetBounded unknown bucket: %v", err)
	}
}
