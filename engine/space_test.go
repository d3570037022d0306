package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/internal/mounttest"
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
		g := newSpaceGuard(mnt, reserve) // fstatfs through the held directory
		defer g.close()
		if err := g.admit(100); err != nil {
			t.Fatalf("read-write, reserve %d: %v", reserve, err)
		}
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT|syscall.MS_RDONLY, "size=8m"); err != nil {
			t.Fatalf("remount read-only: %v", err)
		}
		err := g.admit(100)
		if !errors.Is(err, kv.ErrReadOnly) || !strings.Contains(err.Error(), mnt) {
			t.Fatalf("read-only, reserve %d: %v, want kv.ErrReadOnly naming %s", reserve, err, mnt)
		}
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", syscall.MS_REMOUNT, "size=8m"); err != nil {
			t.Fatalf("remount read-write: %v", err)
		}
	}
}
