//go:build bdb

package recovery

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
)

// hashes returns name → SHA-256 of the regular files of dir, except the
// environment's region and lock files.
func hashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || n == bdb.LockFile || (len(n) > 5 && n[:5] == "__db.") {
			continue
		}
		_, sum, err := hashFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = sum
	}
	return out
}

func TestUpgradeCurrentIsNoOp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := fill(t, dir, "bdb", 30)
	if err := CheckFormat(dir); err != nil {
		t.Fatalf("CheckFormat on a 5.3 directory: %v", err)
	}
	before := hashes(t, dir)
	bk := filepath.Join(t.TempDir(), "pre")
	rep, err := Upgrade(ctx, dir, UpgradeOptions{Options: quietOpts(), BackupDir: bk})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to do: nothing changed, and nothing copied.
	if !rep.NoOp || len(rep.Upgraded) != 0 || len(rep.LogsRemoved) != 0 || rep.BackupDir != "" {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(bk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a no-op upgrade made a backup copy: %v", err)
	}
	after := hashes(t, dir)
	for n, h := range before {
		if after[n] != h {
			t.Errorf("%s changed by a no-op upgrade", n)
		}
	}
	verifyDB(t, dir, want)
	// In use: refused.
	lock, err := bdb.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Upgrade(ctx, dir, UpgradeOptions{Options: quietOpts(), BackupDir: filepath.Join(t.TempDir(), "x")})
	lock.Close()
	if !errors.Is(err, kv.ErrInUse) {
		t.Fatalf("upgrade of a locked directory: %v", err)
	}
}

// ageLogs rewrites the version in the header of every log file of dir to
// an older release's (4.7: log version 14), which is how a 4.x directory
// looks to the upgrade. A log file written ahead that libdb has not used
// yet (zeros: bdb's prezeroer) has no header to age and stays.
func ageLogs(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if bdb.LogNumber(e.Name()) == 0 {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if bdb.LogHeaderUnwritten(p) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for off := 0; off+8 <= 64; off += 4 {
			if binary.LittleEndian.Uint32(b[off:]) == 0x040988 {
				binary.LittleEndian.PutUint32(b[off+4:], 14)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("no log magic in %s", p)
		}
		if err := os.WriteFile(p, b, 0o640); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no log files")
	}
}

func TestUpgradeOldLogs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := fill(t, dir, "bdb", 30)
	ageLogs(t, dir)
	if err := CheckFormat(dir); !errors.Is(err, ErrNeedsUpgrade) {
		t.Fatalf("CheckFormat on old logs: %v", err)
	}
	// The default backup directory is a sibling named DIR.pre-upgrade-*.
	rep, err := Upgrade(ctx, dir, UpgradeOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	bk := rep.BackupDir
	t.Cleanup(func() { os.RemoveAll(bk) })
	if filepath.Dir(bk) != filepath.Dir(dir) || !strings.HasPrefix(filepath.Base(bk), filepath.Base(dir)+".pre-upgrade-") {
		t.Fatalf("default backup dir %s", bk)
	}
	if rep.NoOp || len(rep.LogsRemoved) == 0 || len(rep.LSNReset) != 4 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(bk, rep.LogsRemoved[0])); err != nil {
		t.Fatalf("the old log is not in the backup copy: %v", err)
	}
	if err := CheckFormat(dir); err != nil {
		t.Fatalf("CheckFormat after the upgrade: %v", err)
	}
	verifyDB(t, dir, want)
}

// TestUpgradeRefusesUnclean: a directory whose writer was killed (meta
// in_use still set) is not upgraded, and nothing is written.
func TestUpgradeRefusesUnclean(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "bdb")
	setupRoot(t, srv.addr, 1, 100)
	srv.kill(t)
	ageLogs(t, dir)
	before := hashes(t, dir)
	bk := filepath.Join(t.TempDir(), "pre")
	_, err := Upgrade(context.Background(), dir, UpgradeOptions{Options: quietOpts(), BackupDir: bk})
	if !errors.Is(err, ErrUnclean) {
		t.Fatalf("upgrade of an unclean directory: %v", err)
	}
	t.Logf("refused: %v", err)
	if _, err := os.Stat(bk); err == nil {
		t.Fatal("backup copy made for a refused upgrade")
	}
	after := hashes(t, dir)
	for n, h := range before {
		if after[n] != h {
			t.Errorf("%s changed by a refused upgrade", n)
		}
	}
}
