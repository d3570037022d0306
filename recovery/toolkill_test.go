//go:build bdb

package recovery

import (
	"bytes"
	"context"
	"fmt"
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

	window := timeRun(t, bin, "upgrade", "--dir", copyTree(t, aged)) // the kill window

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := range 10 {
		dir := copyTree(t, aged) // alone in its parent, with its backups
		runKilled(t, rng, window, bin, "upgrade", "--dir", dir)
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
			if i > 0 {
				// A copy of the directory the killed upgrade left (some
				// old logs may be gone): whole means every database file.
				for _, name := range dataFiles() {
					if _, ok := got[name]; !ok {
						t.Fatalf("round %d: backup %s lacks %s: a partial copy under a backup's name", round, b, name)
					}
				}
				continue
			}
			if len(got) != len(orig) {
				t.Fatalf("round %d: backup %s holds %d files, the directory %d: a partial copy under a backup's name", round, b, len(got), len(orig))
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

// TestCopyKilled: `durusbdb copy` killed with SIGKILL at random moments
// leaves at DST either nothing (and the copy run again completes) or the
// whole copy, never a partial database that a server would serve as if it
// were whole. Both destination backends.
func TestCopyKilled(t *testing.T) {
	bin := durusbdbBin(t)
	src := t.TempDir()
	want := fill(t, src, "bdb", 30_000)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for _, kind := range []string{"bdb", "leveldb"} {
		t.Run(kind, func(t *testing.T) {
			window := timeRun(t, bin, "copy", "--backend", kind, src, filepath.Join(t.TempDir(), "probe")) // the kill window
			for round := range 8 {
				// Odd rounds copy into an existing empty directory (moved
				// in entry by entry), even ones into a new one (renamed).
				dst := filepath.Join(t.TempDir(), "dst")
				if round%2 == 1 {
					if err := os.Mkdir(dst, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				runKilled(t, rng, window, bin, "copy", "--backend", kind, src, dst)
				if settledAfterKill(t, dst) {
					verifyDB(t, dst, want) // what is there must be the whole copy
					t.Logf("round %d: the copy had completed", round)
					continue
				}
				if out, err := exec.Command(bin, "copy", "--backend", kind, src, dst).CombinedOutput(); err != nil {
					t.Fatalf("round %d: copy after a kill: %v\n%s", round, err, out)
				}
				verifyDB(t, dst, want)
				clean(t, dst)
				t.Logf("round %d: killed while copying; copied again", round)
			}
		})
	}
}

// TestRestoreKilled: `durusbdb restore` killed with SIGKILL at random
// moments leaves at DIR either nothing (and the restore run again
// completes) or the whole restored database, recovered: never files a
// server would refuse with a misleading error, nor database files not
// yet brought to a consistent state by catastrophic recovery. From a
// backup directory and from a stream file.
func TestRestoreKilled(t *testing.T) {
	bin := durusbdbBin(t)
	src := t.TempDir()
	want := fill(t, src, "bdb", 30_000)
	ctx := context.Background()
	parent := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	for _, stream := range []bool{false, true} {
		in := filepath.Join(parent, fmt.Sprintf("backup-%v", stream))
		if _, err := Backup(ctx, src, in, BackupOptions{Options: quietOpts(), Stream: stream}); err != nil {
			t.Fatal(err)
		}
		window := timeRun(t, bin, "restore", "--no-check", in, filepath.Join(t.TempDir(), "probe"))
		for round := range 8 {
			dst := filepath.Join(t.TempDir(), "dst")
			if round%2 == 1 { // an existing empty directory: moved in entry by entry
				if err := os.Mkdir(dst, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			runKilled(t, rng, window, bin, "restore", "--no-check", in, dst)
			if settledAfterKill(t, dst) {
				verifyDB(t, dst, want) // what is there must be the whole database
				t.Logf("stream %v round %d: the restore had completed", stream, round)
				continue
			}
			if out, err := exec.Command(bin, "restore", "--no-check", in, dst).CombinedOutput(); err != nil {
				t.Fatalf("stream %v round %d: restore after a kill: %v\n%s", stream, round, err, out)
			}
			verifyDB(t, dst, want)
			clean(t, dst)
			t.Logf("stream %v round %d: killed while restoring; restored again", stream, round)
		}
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

// timeRun runs bin with args to its end and returns how long it took: the
// window in which a kill test kills the same command.
func timeRun(t *testing.T, bin string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", args[0], err, out)
	}
	d := time.Since(start)
	t.Logf("one %s takes %v", args[0], d)
	return d
}

// runKilled starts bin with args and kills it with SIGKILL after a random
// delay below window (a deliberate delay, not a wait: it may have ended).
func runKilled(t *testing.T, rng *rand.Rand, window time.Duration, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(rng.Int64N(int64(window))))
	cmd.Process.Kill()
	cmd.Wait()
}
