package backend

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

func touch(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDetect(t *testing.T) {
	empty := t.TempDir()
	if k, err := Detect(empty); k != "" || err != nil {
		t.Fatalf("empty dir: %q %v", k, err)
	}
	withSock := t.TempDir()
	touch(t, withSock, "durusbdb.lock")
	touch(t, withSock, ".hidden")
	ln, err := net.Listen("unix", filepath.Join(withSock, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server's socket (bound before the database opens), the lock and dotfiles are fine.
	if k, err := Detect(withSock); k != "" || err != nil {
		t.Fatalf("socket, lock and dotfile: %q %v", k, err)
	}
	bdbDir := t.TempDir()
	touch(t, bdbDir, "meta.db")
	if k, _ := Detect(bdbDir); k != BDB {
		t.Fatalf("meta.db: %q", k)
	}
	ldbDir := t.TempDir()
	touch(t, ldbDir, "CURRENT")
	if k, _ := Detect(ldbDir); k != LevelDB {
		t.Fatalf("CURRENT: %q", k)
	}
	// A creation killed after the environment existed but before meta.db:
	// no data, so a new database may be created there.
	interrupted := t.TempDir()
	for _, n := range []string{"__db.001", "__db.register", "log.0000000001", "durusbdb.lock"} {
		touch(t, interrupted, n)
	}
	if k, err := Detect(interrupted); k != "" || err != nil {
		t.Fatalf("environment files only: %q %v", k, err)
	}
	partial := t.TempDir()
	touch(t, partial, "__db.001")
	touch(t, partial, "objects.db")
	if _, err := Detect(partial); !errors.Is(err, ErrUnknownLayout) || !strings.Contains(err.Error(), "objects.db") {
		t.Fatalf("a database file without meta.db: %v", err)
	}
	foreign := t.TempDir()
	touch(t, foreign, "Data.fs")
	touch(t, foreign, "log.1")
	if _, err := Detect(foreign); !errors.Is(err, ErrUnknownLayout) || !strings.Contains(err.Error(), foreign) || !strings.Contains(err.Error(), "Data.fs") {
		t.Fatalf("foreign: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	touch(t, filepath.Dir(file), "f")
	if _, err := Detect(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file: %v", err)
	}
	if _, err := Detect(filepath.Join(empty, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestOpenChoices(t *testing.T) {
	opts := kv.Options{Dir: t.TempDir(), Buckets: []kv.BucketSpec{{Name: "meta", File: "meta.db", Prefix: 'm'}}}
	if _, _, err := Open(opts, ""); !errors.Is(err, kv.ErrNotDB) {
		t.Fatalf("empty without Create: %v", err)
	}
	if _, _, err := Open(kv.Options{Dir: opts.Dir, Create: true}, "nosuch"); !errors.Is(err, ErrNotCompiled) {
		t.Fatalf("unknown backend: %v", err)
	}
	opts.Create = true
	s, kind, err := Open(opts, LevelDB)
	if err != nil || kind != LevelDB {
		t.Fatalf("create leveldb: %q %v", kind, err)
	}
	s.Close()
	if _, _, err := Open(opts, BDB); err == nil || !strings.Contains(err.Error(), "holds a leveldb database") {
		t.Fatalf("existing leveldb opened as bdb: %v", err)
	}
	if Default() != Compiled()[0] || !slices.Contains(Compiled(), LevelDB) {
		t.Fatalf("compiled %v default %s", Compiled(), Default())
	}
}

// TestBDBNotCompiled: a build without -tags bdb names the missing tag.
func TestBDBNotCompiled(t *testing.T) {
	if slices.Contains(Compiled(), BDB) {
		// With -tags bdb the opener exists; the message is tested by the
		// default build, which CI runs too (scripts/test.sh).
		return
	}
	dir := t.TempDir()
	touch(t, dir, "meta.db")
	_, _, err := Open(kv.Options{Dir: dir}, "")
	want := "this directory holds a Berkeley DB database; this durusbdb was built without -tags bdb"
	if !errors.Is(err, ErrNotCompiled) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v", err)
	}
}

// TestOpenRemovesStaleStaging: a writable open removes the staging
// directory a killed restore, copy or migrate left inside the database
// directory (a hidden copy of a whole database); a read-only open and a
// staging directory still locked by its process leave it.
func TestOpenRemovesStaleStaging(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(kv.Options{Dir: dir, Create: true, Buckets: []kv.BucketSpec{{Name: "meta", File: "meta.db", Prefix: 'm'}}}, LevelDB)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	stale := filepath.Join(dir, staging.InsidePrefix+"1")
	if err := os.MkdirAll(filepath.Join(stale, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	touch(t, filepath.Join(stale, "db"), "objects.db")
	for _, ro := range []bool{true, false} {
		s, _, err := Open(kv.Options{Dir: dir, ReadOnly: ro, Buckets: []kv.BucketSpec{{Name: "meta", File: "meta.db", Prefix: 'm'}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := os.Stat(stale); ro != (err == nil) {
			t.Fatalf("read-only %v: stale staging directory there afterwards: %v", ro, err == nil)
		}
	}
	live, err := staging.For(dir, ".x-", "test", 0o755, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	s, _, err = Open(kv.Options{Dir: dir, Buckets: []kv.BucketSpec{{Name: "meta", File: "meta.db", Prefix: 'm'}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(live.Path); err != nil {
		t.Fatalf("a staging directory in use was removed: %v", err)
	}
}
