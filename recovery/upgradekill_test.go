//go:build bdb

package recovery

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
)

// TestUpgradeKilled: `durusbdb upgrade` killed with SIGKILL at random
// moments never leaves a partial copy under a backup's name (an operator
// would restore from it), and the upgrade run again completes with every
// record intact. The first backup copy of a directory, when one is
// there, is the old directory byte for byte.
func TestUpgradeKilled(t *testing.T) {
	bin := durusbdbBin(t)
	aged := t.TempDir()
	want := fill(t, aged, "bdb", 30_000)
	ageLogs(t, aged)
	orig := dirFiles(t, aged)

	// The kill window: one whole upgrade of a copy.
	probe := copyTree(t, aged)
	start := time.Now()
	if out, err := exec.Command(bin, "upgrade", "--dir", probe).CombinedOutput(); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	window := time.Since(start)
	t.Logf("one upgrade takes %v", window)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 10 {
		dir := copyTree(t, aged) // alone in its parent, with its backups
		cmd := exec.Command(bin, "upgrade", "--dir", dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(window))))
		cmd.Process.Kill()
		cmd.Wait()
		if out, err := exec.Command(bin, "upgrade", "--dir", dir).CombinedOutput(); err != nil {
			t.Fatalf("round %d: upgrade after a kill: %v\n%s", round, err, out)
		}
		verifyDB(t, dir, want)
		backups, _ := filepath.Glob(dir + ".pre-upgrade-*")
		slices.Sort(backups)
		if len(backups) == 0 {
			t.Fatalf("round %d: no backup copy", round)
		}
		for i, b := range backups {
			got := dirFiles(t, b)
			if len(got) != len(orig) {
				t.Fatalf("round %d: backup %s holds %d files, the directory %d: a partial copy under a backup's name", round, b, len(got), len(orig))
			}
			if i > 0 {
				continue // a copy of the directory the killed upgrade left
			}
			for name, data := range orig {
				if !bytes.Equal(got[name], data) {
					t.Fatalf("round %d: %s in the first backup %s differs from the old directory's", round, name, b)
				}
			}
		}
		t.Logf("round %d: %d backup copies", round, len(backups))
	}
}

// dirFiles reads every regular file of dir but the lock file.
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == bdb.LockFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}
