package staging

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/internal/dbdir"
)

// New removes an unlocked staging directory and keeps a locked one;
// Release removes its directory unless Keep.
func TestNewRemovesStale(t *testing.T) {
	parent := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	stale := filepath.Join(parent, ".x.stage-1")
	if err := os.MkdirAll(filepath.Join(stale, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	busy, err := New(parent, ".x.stage-", "test", 0o700, log)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(parent, ".x.stage-", "test", 0o750, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale staging directory kept: %v", err)
	}
	if _, err := os.Stat(busy.Path); err != nil {
		t.Errorf("a locked staging directory was removed: %v", err)
	}
	if fi, err := os.Stat(d.Path); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("mode of the new staging directory: %v %v", fi.Mode(), err)
	}
	d.Release()
	busy.Keep()
	busy.Release()
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Errorf("Release kept the directory: %v", err)
	}
	if _, err := os.Stat(busy.Path); err != nil {
		t.Errorf("Release after Keep removed the directory: %v", err)
	}
}

// Replace swaps src into target's place (target's mode), src then holds
// the old contents; the same through the two-rename fallback.
func TestReplace(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		parent := t.TempDir()
		src, target := filepath.Join(parent, "src"), filepath.Join(parent, "target")
		for d, f := range map[string]string{src: "new", target: "old"} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(target, 0o751); err != nil {
			t.Fatal(err)
		}
		var err error
		if fallback {
			err = replaceWith(src, target, func(string, string) error { return errNoExchange })
		} else {
			err = Replace(src, target)
		}
		if err != nil {
			t.Fatalf("fallback %v: %v", fallback, err)
		}
		if _, err := os.Stat(filepath.Join(target, "new")); err != nil {
			t.Errorf("fallback %v: target does not hold the new contents: %v", fallback, err)
		}
		if _, err := os.Stat(filepath.Join(src, "old")); err != nil {
			t.Errorf("fallback %v: src does not hold the old contents: %v", fallback, err)
		}
		if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o751 {
			t.Errorf("fallback %v: mode %v, want 0751", fallback, fi.Mode())
		}
		if l := Replaced(target); len(l) != 0 {
			t.Errorf("fallback %v: left aside: %v", fallback, l)
		}
	}
}

// Run as root (as CI is), Replace and MoveInto give the new contents the
// owner of the directory they put them in.
func TestReplaceOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: the owner is left as it is (chown needs root)")
	}
	for name, put := range map[string]func(src, target string) error{
		"Replace":  Replace,
		"MoveInto": func(src, target string) error { return MoveInto(src, target, func(string) bool { return false }) },
	} {
		parent := t.TempDir()
		src, target := filepath.Join(parent, "src"), filepath.Join(parent, "target")
		for _, d := range []string{src, target} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(src, "objects.db"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		const uid, gid = 4242, 4343
		if err := os.Chown(target, uid, gid); err != nil {
			if os.Geteuid() == 0 {
				t.Fatal(err)
			}
			return
		}
		if err := put(src, target); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{target, filepath.Join(target, "objects.db")} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
				t.Errorf("%s: %s: owner %d:%d, want %d:%d", name, p, st.Uid, st.Gid, uid, gid)
			}
		}
	}
}

// TestMoveIntoInterrupted: moving a new database into an existing empty
// directory, interrupted after any number of renames (a kill between two),
// never leaves a directory taken for a database (its marker files move
// last); into a directory that does not exist, it appears with one
// rename.
func TestMoveIntoInterrupted(t *testing.T) {
	layouts := map[string][]string{
		"bdb":     {"__db.001", "garbage.db", "log.0000000001", "meta.db", "objects.db", "refcounts.db"},
		"leveldb": {"000005.ldb", "CURRENT", "LOG", "MANIFEST-000004", "durusbdb.wal"},
	}
	errStop := errors.New("interrupted")
	fill := func(files []string) string {
		dir := t.TempDir()
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for kind, files := range layouts {
		for stopAfter := range len(files) {
			src, target := fill(files), t.TempDir()
			n := 0
			rename := func(a, b string) error {
				if n == stopAfter {
					return errStop
				}
				n++
				return os.Rename(a, b)
			}
			if err := moveInto(src, target, dbdir.Marker, rename); !errors.Is(err, errStop) {
				t.Fatalf("%s, stopped after %d: %v", kind, stopAfter, err)
			}
			if l, err := dbdir.Detect(target); err != nil || l.Kind == dbdir.BDB || l.Kind == dbdir.LevelDB {
				t.Errorf("%s, stopped after %d of %d renames: the directory is taken for a database (%v, %v)", kind, stopAfter, len(files), l.Files, err)
			}
		}
		src := fill(files)
		target := filepath.Join(t.TempDir(), "new", "db")
		renames := 0
		if err := moveInto(src, target, dbdir.Marker, func(a, b string) error { renames++; return os.Rename(a, b) }); err != nil || renames != 1 {
			t.Fatalf("%s into a new directory: %d renames, %v", kind, renames, err)
		}
		if l, err := dbdir.Detect(target); err != nil || l.Kind == dbdir.Empty || l.Kind == dbdir.Foreign {
			t.Fatalf("%s into a new directory: %v %v", kind, l, err)
		}
	}
}
