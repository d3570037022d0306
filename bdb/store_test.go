//go:build bdb

package bdb_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/internal/mounttest"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

func mustOpen(t testing.TB, opts kv.Options) *bdb.Store {
	t.Helper()
	s, err := bdb.OpenStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t testing.TB, s kv.Store, bucket, k, v string) {
	t.Helper()
	err := kv.Update(context.Background(), s, kv.Sync, func(tx kv.Txn) error {
		return tx.Put(bucket, []byte(k), []byte(v))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err error, target error, mention string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("%s: %v does not wrap %v", what, err, target)
	}
	if mention != "" && !strings.Contains(err.Error(), mention) {
		t.Fatalf("%s: %q does not name %q", what, err, mention)
	}
}

func TestOpenErrors(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "missing")
	_, err := bdb.OpenStore(kvtest.Options(missing))
	wantErr(t, "missing dir", err, fs.ErrNotExist, missing)

	file := filepath.Join(base, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	_, err = bdb.OpenStore(kvtest.Options(file))
	wantErr(t, "dir is a file", err, syscall.ENOTDIR, file)

	foreign := filepath.Join(base, "foreign")
	os.Mkdir(foreign, 0o755)
	os.WriteFile(filepath.Join(foreign, "CURRENT"), []byte("MANIFEST-000001\n"), 0o644)
	_, err = bdb.OpenStore(kvtest.Options(foreign))
	wantErr(t, "foreign dir", err, kv.ErrNotDB, foreign)
	if !strings.Contains(err.Error(), "CURRENT") {
		t.Fatalf("foreign dir error does not list the files found: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, bdb.LockFile)); err == nil {
		t.Fatal("open of a foreign dir wrote a lock file")
	}

	garbage := filepath.Join(base, "garbage")
	os.Mkdir(garbage, 0o755)
	os.WriteFile(filepath.Join(garbage, "meta.db"), make([]byte, 8192), 0o644)
	_, err = bdb.OpenStore(kvtest.Options(garbage))
	wantErr(t, "garbage meta.db", err, kv.ErrNotDB, "meta.db")
	if ents, _ := os.ReadDir(garbage); len(ents) != 1 {
		t.Fatalf("open of a garbage meta.db wrote files: %d entries", len(ents))
	}

	empty := filepath.Join(base, "empty")
	os.Mkdir(empty, 0o755)
	o := kvtest.Options(empty)
	o.Create = false
	_, err = bdb.OpenStore(o)
	wantErr(t, "empty dir without Create", err, fs.ErrNotExist, empty)
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("failed open left %d files", len(ents))
	}
	o.ReadOnly = true
	_, err = bdb.OpenStore(o)
	wantErr(t, "empty dir read-only", err, fs.ErrNotExist, empty)
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	put(t, s, "objects", "k", "v")
	_, err := bdb.OpenStore(kvtest.Options(dir))
	wantErr(t, "second writable open", err, kv.ErrInUse, dir)
	ro := kvtest.Options(dir)
	ro.ReadOnly, ro.Create = true, false
	_, err = bdb.OpenStore(ro)
	wantErr(t, "read-only open beside a writer", err, kv.ErrInUse, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Readers share the lock; a writer waits for them to go.
	r1 := mustOpen(t, ro)
	r2 := mustOpen(t, ro)
	_, err = bdb.OpenStore(kvtest.Options(dir))
	wantErr(t, "writer beside readers", err, kv.ErrInUse, dir)
	r1.Close()
	r2.Close()
	s2 := mustOpen(t, kvtest.Options(dir))
	tx, err := s2.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tx.Get("objects", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q %v", v, err)
	}
	tx.Abort()
}

func TestUseAfterClose(t *testing.T) {
	s := mustOpen(t, kvtest.Options(t.TempDir()))
	tx, _ := s.Begin(context.Background(), true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	_, err := s.Begin(context.Background(), false)
	wantErr(t, "begin after close", err, kv.ErrClosed, "")
	wantErr(t, "flush after close", s.Flush(), kv.ErrClosed, "")
	wantErr(t, "checkpoint after close", s.Checkpoint(context.Background(), true), kv.ErrClosed, "")
	_, err = s.Env().Stats()
	wantErr(t, "env stats after close", err, bdb.ErrClosed, "")
	wantErr(t, "put in txn aborted by close", tx.Put("objects", []byte("k"), []byte("v")), kv.ErrClosed, "")
	if err := tx.Abort(); err != nil {
		t.Fatal(err)
	}
}

type fileState struct {
	size  int64
	mtime time.Time
}

func listDir(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]fileState{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fileState{fi.Size(), fi.ModTime()}
	}
	return m
}

// TestReadOnlyWritesNothing: a read-only open reads everything and leaves
// every file of the directory as it was (names, sizes, mtimes).
func TestReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	put(t, s, "objects", "x", "1")
	put(t, s, "hashed", "y", "2")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := listDir(t, dir)
	// Not a wait: time passes so that any write by the read-only open
	// would show as a changed mtime.
	time.Sleep(20 * time.Millisecond)
	o := kvtest.Options(dir)
	o.ReadOnly, o.Create = true, false
	ro := mustOpen(t, o)
	if !ro.Env().ReadOnly() {
		t.Fatal("env not read-only")
	}
	_, err := ro.Begin(context.Background(), true)
	wantErr(t, "writable begin", err, kv.ErrReadOnly, "")
	wantErr(t, "checkpoint", ro.Checkpoint(context.Background(), false), kv.ErrReadOnly, "")
	tx, err := ro.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"objects", "x"}, {"hashed", "y"}} {
		if _, err := tx.Get(c[0], []byte(c[1])); err != nil {
			t.Fatalf("get %v: %v", c, err)
		}
	}
	tx.Abort()
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after := listDir(t, dir)
	if len(after) != len(before) {
		t.Fatalf("read-only open changed the file set: %v -> %v", keys(before), keys(after))
	}
	for n, st := range before {
		if after[n] != st {
			t.Fatalf("read-only open changed %s: %+v -> %+v", n, st, after[n])
		}
	}
}

func keys(m map[string]fileState) []string {
	var l []string
	for k := range m {
		l = append(l, k)
	}
	sort.Strings(l)
	return l
}

// roMount returns a read-only view of dir (mounttest.ReadOnly).
func roMount(t *testing.T, dir string) string { return mounttest.ReadOnly(t, dir) }

// TestNotWritable: a writable open of a read-only directory fails naming
// it; a read-only open of the same directory works (so it creates nothing).
func TestNotWritable(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	put(t, s, "objects", "x", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mnt := roMount(t, dir)
	_, err := bdb.OpenStore(kvtest.Options(mnt))
	wantErr(t, "writable open of a read-only dir", err, nil, mnt)
	if !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("error does not say why: %v", err)
	}
	o := kvtest.Options(mnt)
	o.ReadOnly, o.Create = true, false
	ro := mustOpen(t, o)
	tx, err := ro.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tx.Get("objects", []byte("x")); err != nil || string(v) != "1" {
		t.Fatalf("get on read-only mount: %q %v", v, err)
	}
	tx.Abort()
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
}
