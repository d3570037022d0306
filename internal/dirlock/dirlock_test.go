package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

func take(t *testing.T, dir string, m Mode) *Lock {
	t.Helper()
	l, err := Take(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func wantInUse(t *testing.T, what, dir string, m Mode) {
	t.Helper()
	l, err := Take(dir, m)
	if err == nil {
		l.Close()
		t.Fatalf("%s: Take succeeded", what)
	}
	var iu *InUseError
	if !errors.Is(err, kv.ErrInUse) || !errors.As(err, &iu) || !strings.Contains(err.Error(), filepath.Join(dir, File)) ||
		!strings.Contains(err.Error(), "server") {
		t.Fatalf("%s: %v; want an InUseError wrapping kv.ErrInUse naming the lock file and a server", what, err)
	}
}

func TestExclusion(t *testing.T) {
	dir := t.TempDir()
	w := take(t, dir, Write)
	wantInUse(t, "second writer", dir, Write)
	wantInUse(t, "reader beside a writer", dir, Read)
	wantInUse(t, "exclusive reader beside a writer", dir, ReadExclusive)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r1 := take(t, dir, Read)
	take(t, dir, Read)
	wantInUse(t, "writer beside readers", dir, Write)
	wantInUse(t, "exclusive reader beside readers", dir, ReadExclusive)
	r1.Close()
	r1.Close() // twice is harmless
}

// TestNoLockFile: readers create no lock file, and still exclude a writer
// (through the directory flock) and are excluded by one.
func TestNoLockFile(t *testing.T) {
	dir := t.TempDir()
	r := take(t, dir, ReadExclusive)
	if _, err := os.Stat(filepath.Join(dir, File)); err == nil {
		t.Fatal("a reader created the lock file")
	}
	wantInUse(t, "writer beside an exclusive reader without lock file", dir, Write)
	r.Close()
	take(t, dir, Read)
	wantInUse(t, "writer beside a reader without lock file", dir, Write)
}

// TestPreviousRelease: a LevelDB process of the previous release flocked
// the directory only; it still excludes a new open, and is excluded.
func TestPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	old, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(old.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, "writer beside an old-release process", dir, Write)
	old.Close()
	take(t, dir, Write)
	old, err = os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := syscall.Flock(int(old.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("an old-release process could lock the directory beside a new writer: %v", err)
	}
}

func TestMark(t *testing.T) {
	dir := t.TempDir()
	if m, err := ReadMark(dir); err != nil || m != "" {
		t.Fatalf("no lock file: %q %v", m, err)
	}
	w := take(t, dir, Write)
	if err := w.SetMark("long mark\n"); err != nil {
		t.Fatal(err)
	}
	if err := w.SetMark("short\n"); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMark(dir); err != nil || m != "short\n" {
		t.Fatalf("mark %q %v", m, err)
	}
	w.Close()
	r := take(t, dir, Read)
	if err := r.SetMark("x"); err == nil {
		t.Fatal("a reader wrote the mark")
	}
}

func TestMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	for _, m := range []Mode{Write, Read, ReadExclusive} {
		if _, err := Take(dir, m); err == nil || errors.Is(err, kv.ErrInUse) {
			t.Fatalf("mode %d on a missing directory: %v", m, err)
		}
	}
}

func TestRetake(t *testing.T) {
	dir := t.TempDir()
	r := take(t, dir, Read)
	r.Close()
	w := take(t, dir, Write)
	if err := r.Retake(); !errors.Is(err, kv.ErrInUse) {
		t.Fatalf("retake beside a writer: %v", err)
	}
	w.Close()
	if err := r.Retake(); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, "writer beside a retaken reader", dir, Write)
}
