//go:build bdb

package recovery

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestMessageFileLeavesNothing: while a recovery runs, its message file
// has no name in TMPDIR (nor anywhere), so a recovery killed outright
// leaves nothing behind; what is written through its path (as libdb's
// fopen does) reads back.
func TestMessageFileLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	mf, err := newMessageFile()
	if err != nil {
		t.Fatal(err)
	}
	defer mf.close()
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("a message file in TMPDIR while recovery runs: %v (a kill -9 leaves it)", ents)
	}
	if err := os.WriteFile(mf.path, []byte("BDB2526 Finding last valid log LSN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mf.read(); got != "BDB2526 Finding last valid log LSN\n" {
		t.Fatalf("read back %q", got)
	}
}

// TestUpgradeCheckRemovesStale: the scratch directory of upgrade's
// clean-shutdown check is a staging directory, so one that an upgrade
// killed during the check left in TMPDIR is removed by the next check.
func TestUpgradeCheckRemovesStale(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, "bdb", 10)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stale := filepath.Join(tmp, "durusbdb-upgrade-scratch-1")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if inUse, err := metaInUse(dir, slog.New(slog.DiscardHandler)); err != nil || inUse {
		t.Fatalf("meta in use %v: %v (want a cleanly closed directory)", inUse, err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Fatalf("TMPDIR after the check: %v", ents)
	}
}
