//go:build bdb

package recovery

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/internal/dbdir"
)

// TestToolsIntoMountPoint: every tool that makes a new directory (backup,
// restore, copy to either backend, migrate --create) accepts as its
// output an empty directory that is a mount point, the usual place of a
// new disk. They used to stage beside it, on the parent's file system,
// and fail at the end with "invalid cross-device link" (or, for a backup,
// "file exists") after filling the wrong disk. migrate --force over a
// database at a mount point is refused up front.
func TestToolsIntoMountPoint(t *testing.T) {
	bin := durusbdbBin(t)
	src := t.TempDir()
	want := fill(t, src, "bdb", 20_000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	const size = 256 << 20
	bk := mountSmall(t, size)
	run("backup", "--dir", src, bk)
	run("backup", "--verify", bk)
	clean(t, bk)
	restored := mountSmall(t, size)
	run("restore", "--no-check", bk, restored)
	verifyDB(t, restored, want)
	clean(t, restored)
	for _, kind := range []string{"bdb", "leveldb"} {
		dst := mountSmall(t, size)
		run("copy", "--backend", kind, src, dst)
		verifyDB(t, dst, want)
		clean(t, dst)
	}
	fsFile := filepath.Join(t.TempDir(), "app.durus")
	run("export", "--dir", src, fsFile)
	migrated := mountSmall(t, size)
	run("migrate", "--dir", migrated, "--create", fsFile)
	verifyDB(t, migrated, want)
	clean(t, migrated)
	// --force swaps two directories, which a mount point cannot be: it is
	// refused before the import (it used to fail after it).
	out, err := exec.Command(bin, "migrate", "--dir", migrated, "--force", fsFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is a mount point") || strings.Contains(string(out), "[#") {
		t.Fatalf("migrate --force into a mount point: %v\n%s", err, out)
	}
	verifyDB(t, migrated, want)
}

// clean fails the test if a tool left a staging directory or a move
// journal (any dotfile) in dir or beside it.
func clean(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("left in %s: %s", d, e.Name())
			}
		}
	}
}

// settledAfterKill says what a killed tool left in dst, a directory it
// was filling: the whole result (true), or nothing a server would take for
// a database (false: the tool is to run again). An interrupted move into
// an existing directory must be refused with dbdir.ErrInterruptedMove.
func settledAfterKill(t *testing.T, dst string) bool {
	t.Helper()
	l, err := dbdir.Detect(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, dbdir.ErrInterruptedMove):
		return false
	case err != nil:
		t.Fatalf("after a kill: %v", err)
	case l.Kind == dbdir.BDB || l.Kind == dbdir.LevelDB:
		return true
	case l.Kind == dbdir.Foreign:
		t.Fatalf("after a kill, %s holds %s without a move journal", dst, l.List())
	}
	return false
}
