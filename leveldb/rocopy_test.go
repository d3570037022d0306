package leveldb_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/internal/mounttest"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

// snapshotDir records name, size and modification time of every file.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi.ModTime().String() + "/" + string(rune(fi.Size()%1e6))
	}
	return out
}

// TestReadOnlyWritesNothing: a read-only open reads every committed record
// (also those only in LevelDB's log) and leaves the directory unchanged.
func TestReadOnlyWritesNothing(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	put(t, s, "objects", []byte("k1"), []byte("v1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshotDir(t, dir)
	opts := kvtest.Options(dir)
	opts.ReadOnly, opts.Create = true, false
	ro := mustOpen(t, opts)
	if v, err := get(t, ro, "objects", []byte("k1")); err != nil || string(v) != "v1" {
		t.Fatalf("read-only get: %q %v", v, err)
	}
	err := kv.Update(context.Background(), ro, kv.Sync, func(tx kv.Txn) error { return tx.Put("objects", []byte("k2"), nil) })
	if !errors.Is(err, kv.ErrReadOnly) {
		t.Fatalf("write on read-only store: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after := snapshotDir(t, dir)
	if len(before) != len(after) {
		t.Fatalf("files changed: before %v after %v", before, after)
	}
	for n, v := range before {
		if after[n] != v {
			t.Fatalf("file %s changed by a read-only open", n)
		}
	}
}

// roCopies lists the read-only private copies left in dir.
func roCopies(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "durusbdb-rocopy-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReadOnlyFailedOpenRemovesCopy: a read-only open that fails after it
// made its private copy removes the copy and closes every descriptor it
// opened, on every error path: the copy
// LevelDB's open failing, a foreign backend marker, and the log syncer's
// first pass failing. (The copy's own failure needs an unreadable file,
// which a test running as root cannot make; privateCopy removes its
// directory then by the same kind of defer.)
func TestReadOnlyFailedOpenRemovesCopy(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string // in the open's error: the path taken
	}{
		{"levelopen", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "CURRENT"), []byte("MANIFEST-999999\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "MANIFEST-999999"},
		{"marker", func(t *testing.T, dir string) {
			s := mustOpen(t, kvtest.Options(dir))
			put(t, s, "meta", []byte("backend"), []byte("bdb"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, `meta backend is "bdb"`},
		{"logsync", func(t *testing.T, dir string) {
			// A socket under an old log's name: the copy skips it (not a
			// regular file), the log syncer's fsync cannot open it.
			ln, err := net.Listen("unix", filepath.Join(dir, "000000.log"))
			if err != nil {
				t.Fatal(err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false)
			ln.Close()
		}, "000000.log"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, kvtest.Options(dir))
			put(t, s, "objects", []byte("k"), []byte("v"))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			c.spoil(t, dir)
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			opts := kvtest.Options(dir)
			opts.ReadOnly, opts.Create = true, false
			fds := kvtest.OpenFDs(t)
			ro, err := leveldb.OpenStore(opts)
			if err == nil {
				ro.Close()
				t.Fatal("the read-only open of a spoilt directory succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("open failed with %v, not on the path under test (%q)", err, c.want)
			}
			if left := roCopies(t, tmp); len(left) != 0 {
				t.Fatalf("failed open (%v) left its private copy: %v", err, left)
			}
			if now := kvtest.OpenFDs(t); now != fds {
				t.Fatalf("failed open (%v) left %d descriptors open", err, now-fds)
			}
			// Nor does it keep the directory lock.
			f, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Fatalf("the failed open kept the directory lock: %v", err)
			}
		})
	}
}

// TestReadOnlyTmpdirOtherFileSystem: with TMPDIR on another file system
// (a small tmpfs, as /tmp often is), a read-only open hard-links its
// private copy inside the database directory instead of copying every
// table into TMPDIR (which a database larger than TMPDIR's free space, or
// the machine's RAM, could not open); the copy goes on close, and one a
// killed process left is removed by the next read-only open.
func TestReadOnlyTmpdirOtherFileSystem(t *testing.T) {
	tmp := mountTmpfs(t, "1m")
	t.Setenv("TMPDIR", tmp)

	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	putIncompressible(t, s, 64) // 4 MiB of tables, more than TMPDIR holds
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Opened again, LevelDB replays its log into a table file: the
	// tables are what a private copy links.
	if err := mustOpen(t, kvtest.Options(dir)).Close(); err != nil {
		t.Fatal(err)
	}
	if tables, _ := filepath.Glob(filepath.Join(dir, "*.ldb")); len(tables) == 0 {
		t.Fatal("no table file to link")
	}
	stale := filepath.Join(dir, ".durusbdb-ro-1")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	opts := kvtest.Options(dir)
	opts.ReadOnly, opts.Create = true, false
	ro, err := leveldb.OpenStore(opts)
	if err != nil {
		t.Fatalf("read-only open with TMPDIR on a 1-MiB tmpfs: %v", err)
	}
	if v, err := get(t, ro, "objects", []byte{63}); err != nil || len(v) != incompressibleSize || v[0] != 63 {
		t.Fatalf("read-only get: %d bytes, %v", len(v), err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the private copy a killed open left is still there: %v", err)
	}
	inside, _ := filepath.Glob(filepath.Join(dir, ".durusbdb-ro-*"))
	if len(inside) != 1 {
		t.Errorf("private copies inside the directory while open: %v, want one", inside)
	}
	if left := roCopies(t, tmp); len(left) != 0 {
		t.Errorf("private copy in TMPDIR on another file system: %v", left)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if inside, _ := filepath.Glob(filepath.Join(dir, ".durusbdb-ro-*")); len(inside) != 0 {
		t.Errorf("private copy left inside the directory after close: %v", inside)
	}

	// The directory on a read-only mount, TMPDIR on a disk with room: no
	// link is possible, the tables are copied into TMPDIR, and the log
	// says how many bytes.
	rodir := mounttest.ReadOnly(t, dir)
	big2 := t.TempDir()
	t.Setenv("TMPDIR", big2)
	var logged strings.Builder
	opts = kvtest.Options(rodir)
	opts.ReadOnly, opts.Create = true, false
	opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	ro, err = leveldb.OpenStore(opts)
	if err != nil {
		t.Fatalf("read-only open on a read-only mount: %v", err)
	}
	if v, err := get(t, ro, "objects", []byte{63}); err != nil || len(v) != incompressibleSize {
		t.Fatalf("read-only get on a read-only mount: %d bytes, %v", len(v), err)
	}
	if len(roCopies(t, big2)) != 1 || !strings.Contains(logged.String(), "copied table files") {
		t.Errorf("read-only mount: copies in TMPDIR %v; log %q", roCopies(t, big2), logged.String())
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if left := roCopies(t, big2); len(left) != 0 {
		t.Errorf("private copy left in TMPDIR after close: %v", left)
	}
}

// mountTmpfs mounts a tmpfs of size (mount's size= option) on a new
// directory, unmounted at cleanup, and returns its path; a test that
// cannot mount one fails (mounttest.Unavailable).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size="+size); err != nil {
		mounttest.Unavailable(t, "cannot mount a small tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	return mnt
}

// incompressibleSize is the value size putIncompressible writes.
const incompressibleSize = 64 << 10

// putIncompressible puts n values of incompressibleSize random bytes
// (snappy cannot shrink them) under the keys 0..n-1 of "objects", value
// i starting with byte i.
func putIncompressible(t *testing.T, s kv.Store, n int) {
	t.Helper()
	big := make([]byte, incompressibleSize)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		for j := range big {
			big[j] = byte(rnd.Uint32())
		}
		big[0] = byte(i)
		put(t, s, "objects", []byte{byte(i)}, big)
	}
}

// TestReadOnlyErrorsNameTheDatabase: a read-only open reads a private copy
// of the database; LevelDB's errors named the copy's files, in a
// temporary directory gone by the time anyone reads the message (QA).
// They name the database's own files.
func TestReadOnlyErrorsNameTheDatabase(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	val := make([]byte, 4000)
	for i := range 200 {
		for j := range val {
			val[j] = byte(i*31 + j*7)
		}
		put(t, s, "objects", []byte{byte(i)}, val)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, kvtest.Options(dir)).Close() // LevelDB's log into a table
	tables, _ := filepath.Glob(filepath.Join(dir, "*.ldb"))
	if len(tables) == 0 {
		t.Fatal("no table file")
	}
	b, err := os.ReadFile(tables[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tables[0], b[:len(b)/2], 0o644); err != nil { // cut short
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	opts := kvtest.Options(dir)
	opts.ReadOnly, opts.Create = true, false
	ro, err := leveldb.OpenStore(opts)
	if err == nil {
		defer ro.Close()
		for i := range 200 {
			if _, err = get(t, ro, "objects", []byte{byte(i)}); err != nil {
				break
			}
		}
	}
	if err == nil {
		t.Fatal("no error reading a damaged table")
	}
	if strings.Contains(err.Error(), tmp) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error names %s (the private copy's directory), or not %s: %v", tmp, dir, err)
	}
}
