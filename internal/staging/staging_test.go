package staging

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
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

// For into an existing directory stages inside it, and still removes the
// stale staging directories that killed runs into new outputs left beside
// (in the parent): a backup run by timer into the same existing directory
// would otherwise never remove the hidden copy an earlier kill left on the
// parent's disk. A live one beside stays.
func TestForInsideRemovesStaleBeside(t *testing.T) {
	parent := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	target := filepath.Join(parent, "out")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	busy, err := New(parent, ".x.stage-", "test", 0o700, log)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Release()
	stale := filepath.Join(parent, ".x.stage-1")
	if err := os.MkdirAll(filepath.Join(stale, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := For(target, ".x.stage-", "test", 0o700, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if !d.Inside(target) {
		t.Errorf("staging directory %s not inside the existing %s", d.Path, target)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale staging directory beside the output kept: %v", err)
	}
	if _, err := os.Stat(busy.Path); err != nil {
		t.Errorf("a locked staging directory beside the output was removed: %v", err)
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
		"MoveInto": func(src, target string) error { return MoveInto(src, target, dbdir.MoveRank) },
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
// never leaves a directory taken for a database nor one taken for empty
// (dbdir.Detect refuses it with ErrInterruptedMove); Settle then removes
// what was moved, leaving the directory empty, and the move done again
// completes. Into a directory that does not exist, the database appears
// with one rename.
func TestMoveIntoInterrupted(t *testing.T) {
	layouts := map[string][]string{
		"bdb":     {"__db.001", "durusbdb.lock", "garbage.db", "log.0000000001", "meta.db", "objects.db", "refcounts.db"},
		"leveldb": {"000005.ldb", "CURRENT", "LOG", "MANIFEST-000004", "durusbdb.lock", "durusbdb.wal"},
	}
	log := slog.New(slog.DiscardHandler)
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
		moved := len(files) - 1 // all but durusbdb.lock
		for stopAfter := range moved {
			src, target := fill(files), t.TempDir()
			// A kill after stopAfter renames: the goroutine ends at the
			// next one, running nothing more of moveInto.
			n := 0
			rename := func(a, b string) error {
				if n == stopAfter {
					runtime.Goexit()
				}
				n++
				return os.Rename(a, b)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				moveInto(src, target, dbdir.MoveRank, rename)
				t.Errorf("%s, stopped after %d: moveInto returned", kind, stopAfter)
			}()
			<-done
			if l, err := dbdir.Detect(target); !errors.Is(err, dbdir.ErrInterruptedMove) {
				t.Errorf("%s, stopped after %d of %d renames: Detect %v %v, want ErrInterruptedMove", kind, stopAfter, moved, l, err)
			}
			removed, err := Settle(target, log)
			if err != nil || len(removed) != stopAfter {
				t.Fatalf("%s, stopped after %d: Settle removed %v: %v", kind, stopAfter, removed, err)
			}
			if ents, _ := os.ReadDir(target); len(ents) != 0 {
				t.Fatalf("%s, stopped after %d: left after Settle: %v", kind, stopAfter, ents)
			}
			if err := MoveInto(fill(files), target, dbdir.MoveRank); err != nil {
				t.Fatalf("%s, stopped after %d: the move again: %v", kind, stopAfter, err)
			}
			if l, err := dbdir.Detect(target); err != nil || (l.Kind != dbdir.BDB && l.Kind != dbdir.LevelDB) || len(l.Files) != len(files)-countIgnorable(files) {
				t.Fatalf("%s, stopped after %d: after the move again: %v %v", kind, stopAfter, l, err)
			}
		}
		// Interrupted after the last rename, before the journal was
		// removed: the move had completed; Settle keeps it.
		src, target := fill(files), t.TempDir()
		if err := moveInto(src, target, dbdir.MoveRank, os.Rename); err != nil {
			t.Fatal(err)
		}
		if err := writeJournal(target, journal{Entries: []string{"objects.db", "meta.db", "CURRENT"}[map[string]int{"bdb": 0, "leveldb": 2}[kind]:][:1]}); err != nil {
			t.Fatal(err)
		}
		if removed, err := Settle(target, log); err != nil || len(removed) != 0 {
			t.Fatalf("%s: Settle after a completed move removed %v: %v", kind, removed, err)
		}
		if _, err := os.Stat(filepath.Join(target, dbdir.MoveJournal)); !os.IsNotExist(err) {
			t.Fatalf("%s: journal kept: %v", kind, err)
		}
		src = fill(files)
		target = filepath.Join(t.TempDir(), "new", "db")
		renames := 0
		if err := moveInto(src, target, dbdir.MoveRank, func(a, b string) error { renames++; return os.Rename(a, b) }); err != nil || renames != 1 {
			t.Fatalf("%s into a new directory: %d renames, %v", kind, renames, err)
		}
		if l, err := dbdir.Detect(target); err != nil || l.Kind == dbdir.Empty || l.Kind == dbdir.Foreign {
			t.Fatalf("%s into a new directory: %v %v", kind, l, err)
		}
	}
}

// TestMoveIntoFailedUndone: a rename that fails half way through a move
// into an existing directory (not a crash) moves back what was moved:
// the target is as it was, src whole, no journal left.
func TestMoveIntoFailedUndone(t *testing.T) {
	files := []string{"__db.001", "log.0000000001", "meta.db", "objects.db", "refcounts.db"}
	errStop := errors.New("rename failed")
	for stopAfter := range len(files) {
		src, target := t.TempDir(), t.TempDir()
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		n := 0
		rename := func(a, b string) error {
			if n == stopAfter {
				return errStop
			}
			n++
			return os.Rename(a, b)
		}
		if err := moveInto(src, target, dbdir.MoveRank, rename); !errors.Is(err, errStop) {
			t.Fatalf("stopped after %d: %v", stopAfter, err)
		}
		if ents, _ := os.ReadDir(target); len(ents) != 0 {
			t.Fatalf("stopped after %d: the target holds %v", stopAfter, ents)
		}
		if ents, _ := os.ReadDir(src); len(ents) != len(files) {
			t.Fatalf("stopped after %d: src holds %v", stopAfter, ents)
		}
	}
}

// countIgnorable counts the files dbdir ignores (Detect does not list
// them).
func countIgnorable(files []string) int {
	n := 0
	for _, f := range files {
		if dbdir.Ignorable(f, 0) {
			n++
		}
	}
	return n
}

// TestMoveIntoRefusesPresent: an entry already in the target stops the
// move before anything is renamed, and nothing is overwritten.
func TestMoveIntoRefusesPresent(t *testing.T) {
	src, target := t.TempDir(), t.TempDir()
	for _, f := range []string{"objects.db", "meta.db"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte("new"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "meta.db"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MoveInto(src, target, dbdir.MoveRank); err == nil {
		t.Fatal("moved over an existing file")
	}
	if b, _ := os.ReadFile(filepath.Join(target, "meta.db")); string(b) != "old" {
		t.Fatalf("meta.db overwritten: %q", b)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 1 {
		t.Fatalf("target holds %v", ents)
	}
}

// TestSettleBusy: Settle removes a stale staging directory inside the
// target and refuses while a live one is there.
func TestSettleBusy(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	target := t.TempDir()
	stale := filepath.Join(target, InsidePrefix+"1")
	if err := os.MkdirAll(filepath.Join(stale, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Settle(target, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale staging directory kept: %v", err)
	}
	d, err := For(target, ".x-", "test", 0o755, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Release()
	if !d.Inside(target) {
		t.Fatalf("For(an existing directory) made %s, not inside it", d.Path)
	}
	if _, err := Settle(target, log); !errors.Is(err, ErrBusy) {
		t.Fatalf("Settle while a staging directory is held: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "new")
	d2, err := For(missing, ".new.x-", "test", 0o755, log)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Release()
	if d2.Inside(missing) || filepath.Dir(d2.Path) != filepath.Dir(missing) {
		t.Fatalf("For(a missing directory) made %s, not beside it", d2.Path)
	}
}

// MoveInto from an empty directory into an existing one changes nothing
// and writes no journal (an empty one, left by a kill, would be a journal
// Settle refuses to read).
func TestMoveIntoEmpty(t *testing.T) {
	src, target := t.TempDir(), t.TempDir()
	if err := MoveInto(src, target, dbdir.MoveRank); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Fatalf("target holds %v after moving nothing", ents)
	}
	// A journal of nothing (as a kill left it before MoveInto skipped
	// it) settles like none.
	if err := os.WriteFile(filepath.Join(target, dbdir.MoveJournal), []byte(`{"entries":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Settle(target, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("settle an empty journal: %v", err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Fatalf("target holds %v after settling an empty journal", ents)
	}
}
