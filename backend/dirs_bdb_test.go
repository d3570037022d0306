//go:build bdb

package backend_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/internal/dirlock"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

type openFunc func(kv.Options) (kv.Store, error)

func openers() map[string]openFunc {
	return map[string]openFunc{
		backend.BDB:     func(o kv.Options) (kv.Store, error) { return store(bdb.OpenStore(o)) },
		backend.LevelDB: func(o kv.Options) (kv.Store, error) { return store(leveldb.OpenStore(o)) },
	}
}

// store makes a failed open's nil store a nil kv.Store.
func store[S kv.Store](s S, err error) (kv.Store, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// fill makes a directory: a database of kind db ("" for none) and the
// named extra files; a name starting with "-" is removed instead.
func fill(t *testing.T, db string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	if db != "" {
		s, err := openers()[db](kvtest.Options(dir))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if name, ok := strings.CutPrefix(f, "-"); ok {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestOneDetector: the same directory contents get the same answer from
// backend.Detect and from both backends' opens (with Create): a backend
// opens exactly the empty directories and its own, and refuses the others
// with kv.ErrNotDB.
func TestOneDetector(t *testing.T) {
	cases := []struct {
		name  string
		db    string
		files []string
		want  string // Detect's answer; "?" for an unknown layout
	}{
		{"empty", "", nil, ""},
		{"ignorable", "", []string{"x.log.txt", ".hidden", "durusbdb.lock", "DB_CONFIG"}, ""},
		{"foreign", "", []string{"notes.txt"}, "?"},
		{"bucket file without meta.db", "", []string{"objects.db"}, "?"},
		{"foreign and ignorable", "", []string{"x.log.txt", "Data.fs"}, "?"},
		{"bdb without meta.db", backend.BDB, []string{"-meta.db"}, "?"},
		{"leveldb without CURRENT", backend.LevelDB, []string{"-CURRENT"}, "?"},
		{"bdb", backend.BDB, nil, backend.BDB},
		{"bdb with text log", backend.BDB, []string{"x.log.txt"}, backend.BDB},
		{"leveldb", backend.LevelDB, nil, backend.LevelDB},
		{"leveldb with text log", backend.LevelDB, []string{"x.log.txt"}, backend.LevelDB},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := backend.Detect(fill(t, c.db, c.files...))
			if c.want == "?" {
				if !errors.Is(err, backend.ErrUnknownLayout) {
					t.Fatalf("Detect: %q %v; want ErrUnknownLayout", got, err)
				}
			} else if got != c.want || err != nil {
				t.Fatalf("Detect: %q %v; want %q", got, err, c.want)
			}
			for kind, open := range openers() {
				dir := fill(t, c.db, c.files...)
				s, err := open(kvtest.Options(dir))
				if s != nil {
					s.Close()
				}
				accept := c.want == "" || c.want == kind
				switch {
				case accept && err != nil:
					t.Errorf("%s open refused what Detect calls %q: %v", kind, c.want, err)
				case !accept && !errors.Is(err, kv.ErrNotDB):
					t.Errorf("%s open of what Detect calls %q: %v; want kv.ErrNotDB", kind, c.want, err)
				}
			}
		})
	}
}

// TestOneLock: both backends take the directory lock of package dirlock:
// a second open (writable or read-only) fails with its error, which
// wraps kv.ErrInUse and names the lock file; Close releases it, and so
// does an open that fails after taking it (which leaves no descriptor
// open).
func TestOneLock(t *testing.T) {
	for kind, open := range openers() {
		t.Run(kind, func(t *testing.T) {
			dir := fill(t, kind)
			s, err := open(kvtest.Options(dir))
			if err != nil {
				t.Fatal(err)
			}
			ro := kvtest.Options(dir)
			ro.ReadOnly, ro.Create = true, false
			for _, o := range []kv.Options{kvtest.Options(dir), ro} {
				_, err := open(o)
				var iu *dirlock.InUseError
				if !errors.Is(err, kv.ErrInUse) || !errors.As(err, &iu) || !strings.Contains(err.Error(), filepath.Join(dir, dirlock.File)) {
					t.Fatalf("second open (read-only %v): %v; want a dirlock.InUseError naming the lock file", o.ReadOnly, err)
				}
			}
			// The other backend refuses the directory before locking.
			for other, open := range openers() {
				if _, err := open(kvtest.Options(dir)); other != kind && !errors.Is(err, kv.ErrNotDB) {
					t.Fatalf("%s open of a %s directory: %v", other, kind, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			l, err := dirlock.Take(dir, dirlock.Write)
			if err != nil {
				t.Fatalf("after Close: %v", err)
			}
			l.Close()
			// An open that fails after taking the lock releases it.
			bad := kvtest.Options(dir)
			if kind == backend.BDB {
				bad.Buckets = append(bad.Buckets, bad.Buckets[0]) // refused once the environment is open
			} else {
				spoilMarker(t, dir) // refused once LevelDB has opened
			}
			fds := kvtest.OpenFDs(t)
			if s, err := open(bad); err == nil {
				s.Close()
				t.Fatal("the bad open succeeded")
			}
			if now := kvtest.OpenFDs(t); now != fds {
				t.Fatalf("the failed open left %d descriptors open", now-fds)
			}
			l, err = dirlock.Take(dir, dirlock.Write)
			if err != nil {
				t.Fatalf("after a failed open: %v", err)
			}
			l.Close()
		})
	}
}

// spoilMarker makes the LevelDB database in dir claim another backend.
func spoilMarker(t *testing.T, dir string) {
	t.Helper()
	s, err := leveldb.OpenStore(kvtest.Options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := kv.Update(context.Background(), s, kv.Sync, func(tx kv.Txn) error {
		return tx.Put(kvtest.Meta, []byte("backend"), []byte("bdb"))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPreviousReleaseLevelDB: the previous release's LevelDB backend
// flocked the directory itself (and created no lock file). A directory it
// wrote opens, and while one of its processes holds it, both writable and
// read-only opens are refused with the in-use error; and the reverse: an
// open of this release keeps such a process out.
func TestPreviousReleaseLevelDB(t *testing.T) {
	dir := fill(t, backend.LevelDB)
	if err := os.Remove(filepath.Join(dir, dirlock.File)); err != nil {
		t.Fatal(err) // as the previous release left it: no lock file
	}
	old, err := oldLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	ro := kvtest.Options(dir)
	ro.ReadOnly, ro.Create = true, false
	for _, o := range []kv.Options{kvtest.Options(dir), ro} {
		if _, err := leveldb.OpenStore(o); !errors.Is(err, kv.ErrInUse) {
			t.Fatalf("open (read-only %v) beside an old-release process: %v", o.ReadOnly, err)
		}
	}
	old.Close()
	s, err := leveldb.OpenStore(kvtest.Options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if old, err := oldLock(dir); !errors.Is(err, syscall.EWOULDBLOCK) {
		old.Close()
		t.Fatalf("an old-release process could lock the directory of an open store: %v", err)
	}
}

// oldLock takes the flock the previous release's LevelDB backend took.
func oldLock(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
