//go:build bdb

package recovery

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	// The same with the directory named relative to the working
	// directory (the tools compare paths made absolute).
	rel := mountSmall(t, size)
	cmd := exec.Command(bin, "restore", "--no-check", bk, filepath.Base(rel))
	cmd.Dir = filepath.Dir(rel)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore into a relative path: %v\n%s", err, out)
	}
	verifyDB(t, rel, want)
	clean(t, rel)
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

// TestToolsOnFullDisk: a tool whose output does not fit on its disk
// fails with "no space left on device" and leaves the disk as it was. A
// copy and a restore's recovery used to die of SIGBUS inside libdb: the
// region files it memory-maps grow sparse, and the first touch of a page
// the full disk could not back killed the process. Now an environment
// opens only with room for its region files grown in full
// (bdb.checkRegionRoom), and every page libdb may map is backed once it
// is open (bdb.backRegions).
func TestToolsOnFullDisk(t *testing.T) {
	bin := durusbdbBin(t)
	src := t.TempDir()
	fill(t, src, "bdb", 30_000)
	bk := filepath.Join(t.TempDir(), "bk")
	if out, err := exec.Command(bin, "backup", "--dir", src, bk).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	// The restore writes the backup's blocks of data and skips its blocks
	// of zeros (a log file written ahead is mostly zeros, and how much of
	// one a backup holds depends on when libdb switched logs): room for
	// the data but not for the region files of the default 64-MiB cache
	// (132 MiB, bdb.regionRoom) is 132 MiB and half the data.
	regionsOnly := int64(132)
	roomForData := regionsOnly + (allocatedBytes(t, bk)>>20)/2
	fsFile := filepath.Join(t.TempDir(), "Data.durus")
	if out, err := exec.Command(bin, "export", "--dir", src, fsFile).CombinedOutput(); err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		mibs []int64
	}{
		{[]string{"copy", "--backend", "bdb", src}, []int64{12, 34, 150}},
		{[]string{"restore", "--no-check", bk}, []int64{12, 34, roomForData}},
		// A LevelDB import, with no region files to make room for.
		{[]string{"migrate", "--create", "--backend", "leveldb", fsFile, "--dir"}, []int64{2, 10}},
	} {
		args := c.args
		// Too small for the files (restore) or for the environment's
		// region files (copy); room for the region files (backed when
		// the environment opens) but not for the data (copy), or for the
		// data but not for the region files of the restore's recovery.
		for _, mib := range c.mibs {
			dst := mountSmall(t, mib<<20)
			out, err := exec.Command(bin, append(args, dst)...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(strings.ToLower(string(out)), "no space left on device") {
				t.Fatalf("%s onto a full %d-MiB disk: %v (want exit 1 naming no space)\n%s", args[0], mib, err, tail(string(out), 3000))
			}
			if ents, _ := os.ReadDir(dst); len(ents) != 0 {
				t.Fatalf("%s onto a full %d-MiB disk left %v", args[0], mib, ents)
			}
			// What the staging directory held is gone with it: the error
			// does not say a directory "stays marked incomplete".
			if strings.Contains(string(out), "stays marked incomplete") || !strings.Contains(string(out), "left as it was") {
				t.Fatalf("%s onto a full %d-MiB disk: the error misstates what is left:\n%s", args[0], mib, tail(string(out), 3000))
			}
		}
	}
}

// allocatedBytes is the disk space the files under dir take (their
// blocks, not their sizes: holes take none).
func allocatedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		n += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
