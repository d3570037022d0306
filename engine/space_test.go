package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/mounttest"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/kv"
)

// TestSpaceGuardReadOnlyFS: on a file system mounted read-only the guard
// refuses with kv.ErrReadOnly naming the directory, even with the space
// check disabled; on the same file system mounted read-write it admits.
func TestSpaceGuardReadOnlyFS(t *testing.T) {
	if os.Geteuid() != 0 {
		mounttest.Unavailable(t, "mounting a tmpfs needs root (CI runs as root)")
	}
	mnt := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=8m"); err != nil {
		mounttest.Unavailable(t, "mount tmpfs: %v", err)
	}
	defer syscall.Unmount(mnt, 0)
	for _, reserve := range []int64{1 << 20, -1} {
		g := newSpaceGuard(mnt, reserve, slog.New(slog.DiscardHandler)) // fstatfs through the held directory
		defer g.close()
		if err := g.admit(100); err != nil {
			t.Fatalf("read-write, reserve %d: %v", reserve, err)
		}
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=8m"); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		// The guard may answer from a statfs up to spaceRecheck old.
		var err error
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if err = g.admit(100); err != nil {
				break
			}
		}
		if !errors.Is(err, kv.ErrReadOnly) || !strings.Contains(err.Error(), mnt) {
			t.Fatalf("read-only, reserve %d: %v, want kv.ErrReadOnly naming %s", reserve, err, mnt)
		}
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=8m"); err != nil {
			t.Fatalf("remount read-write: %v", err)
		}
	}
}

// TestSpaceAdmitAmortized: a burst of admissions asks statfs about once
// per spaceRecheck, not once per commit (one syscall inside the commit
// token each), yet what it admits between two statfs calls never spends
// past the reserve: near it, every admission asks statfs again, and a
// refusal is always decided on a fresh one.
func TestSpaceAdmitAmortized(t *testing.T) {
	const bsize = 1               // byte-sized blocks, so the room below is exact
	freeBlocks := uint64(4 << 30) // 4 GiB free, as the fake file system says
	g := newSpaceGuard(t.TempDir(), 1<<20, slog.New(slog.DiscardHandler))
	defer g.close()
	g.recent.stat = func(st *syscall.Statfs_t) error {
		st.Bsize, st.Bavail = bsize, freeBlocks
		return nil
	}
	for i := 0; i < 1000; i++ {
		if err := g.admit(100); err != nil {
			t.Fatal(err)
		}
	}
	if c := g.recent.calls; c > 100 {
		t.Errorf("1000 admissions made %d statfs calls, want them amortized (≤ 100)", c)
	}
	// Room for exactly 10 commits of 100 bytes above the reserve: those
	// 10 may share one statfs, the 11th may not be admitted on it.
	freeBlocks = uint64(g.reserve + 10*spaceFactor*100)
	g.recent.at = time.Time{}
	start := g.recent.calls
	for i := 0; i < 10; i++ {
		if err := g.admit(100); err != nil {
			t.Fatalf("admission %d of 10 within the room: %v", i+1, err)
		}
	}
	if c := g.recent.calls - start; c < 1 {
		t.Fatalf("no statfs for the first admission after a reset")
	}
	before := g.recent.calls
	if err := g.admit(100); err != nil {
		t.Fatalf("11th admission (a fresh statfs still shows the room): %v", err)
	}
	if g.recent.calls == before {
		t.Errorf("the 11th admission spent past the reserve on the statfs of the first 10")
	}
	// A refusal is never made on a cached statfs: here the cached one
	// shows no room while the file system has space again.
	freeBlocks = 4 << 30
	g.recent.free = g.reserve
	before = g.recent.calls
	if err := g.admit(100); err != nil {
		t.Fatalf("admission after space was freed: %v (refused on a cached statfs?)", err)
	}
	if g.recent.calls == before {
		t.Errorf("no fresh statfs before deciding near the reserve")
	}
}

// TestSpaceGuardInodes: a file system out of inodes (df -i) with bytes to
// spare cannot create the next log file or table; the guard refuses
// commits then too (kv.ErrNoSpace, the message naming inodes), and
// admits them once inodes are freed. A file system that reports no inode
// counts (f_files 0, as btrfs) is not checked.
func TestSpaceGuardInodes(t *testing.T) {
	g := newSpaceGuard(t.TempDir(), 1<<20, slog.New(slog.DiscardHandler))
	defer g.close()
	var files, ffree uint64
	g.recent.stat = func(st *syscall.Statfs_t) error {
		st.Bsize, st.Bavail, st.Files, st.Ffree = 4096, 1<<20, files, ffree
		return nil
	}
	for _, c := range []struct {
		files, ffree uint64
		refused      bool
	}{
		{1000, 1000, false},
		{1000, MinFreeInodes - 1, true},
		{1000, MinFreeInodes, false},
		{0, 0, false},
	} {
		files, ffree = c.files, c.ffree
		g.recent.at = time.Time{}
		err := g.admit(100)
		if c.refused != (err != nil) || c.refused && (!errors.Is(err, kv.ErrNoSpace) || !strings.Contains(err.Error(), "inodes")) {
			t.Errorf("%d of %d inodes free: %v", c.ffree, c.files, err)
		}
	}
}

// TestDirRemovedWhileOpen: a database directory removed (rm -rf) while
// the database is open lives on in unlinked files until the process ends,
// and everything written to it is lost then. Commits are refused from the
// guard's next look (ErrDirRemoved), loads go on, and the log says once,
// as an error, how to save the data while the process still holds it
// (/proc/PID/fd).
func TestDirRemovedWhileOpen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var logs testlog.Buffer
		opts := testOpts(kind)
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		dir := filepath.Join(t.TempDir(), "db")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		db := openTest(t, dir, opts)
		mustAlloc(t, db, 4)
		mustCommit(t, db, rec(0, 1), rec(1))
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * spaceRecheck)
		for range 2 {
			if _, err := db.Stage(context.Background(), [][]byte{rec(2)}); !errors.Is(err, ErrDirRemoved) {
				t.Fatalf("commit after the directory was removed: %v, want ErrDirRemoved", err)
			}
		}
		if r, err := db.Load(1); err != nil || !bytes.Equal(r, rec(1)) {
			t.Fatalf("load after the directory was removed: %v", err)
		}
		if l := logs.String(); strings.Count(l, "level=ERROR") != 1 || !strings.Contains(l, "/proc/") {
			t.Fatalf("want one error naming /proc/PID/fd, got:\n%s", l)
		}
	})
}
