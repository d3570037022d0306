// Package mounttest decides what a test does when it cannot set up what
// only root can (a small tmpfs, a read-only bind mount, a loop-mounted ext4
// image, a client run as another user). CI runs as root, where every such
// setup works, so the test fails there rather than passing unseen; a
// developer on a machine without them sets DURUSBDB_SKIP_MOUNT_TESTS=1 to
// skip these tests instead.
package mounttest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// EnvSkip is the environment variable that, set to "1", turns the failure
// of Unavailable into a skip.
const EnvSkip = "DURUSBDB_SKIP_MOUNT_TESTS"

// Unavailable ends the test because a mount it needs cannot be made: it
// fails, saying why, unless EnvSkip is "1", when it skips.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%s (skipped: %s=1)", msg, EnvSkip)
		return
	}
	t.Fatalf("%s (set %s=1 to skip the mount tests on a machine that cannot mount)", msg, EnvSkip)
}

// ReadOnly returns a read-only view of dir, removed at the test's end:
// as root, whom permission bits do not stop, a read-only bind mount
// (Unavailable if it cannot be made); otherwise dir itself with its write
// bits removed.
func ReadOnly(t testing.TB, dir string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		return dir
	}
	mnt := t.TempDir()
	if err := syscall.Mount(dir, mnt, "", syscall.MS_BIND, ""); err != nil {
		Unavailable(t, "running as root and cannot bind-mount (%v): root ignores permission bits, so a non-writable directory cannot be made here", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	if err := syscall.Mount("", mnt, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		Unavailable(t, "cannot remount %s read-only (%v)", mnt, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o644); err == nil {
		t.Fatalf("the read-only mount %s is writable", mnt)
	}
	return mnt
}
