package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
)

// TestLiveBackupRemovesStaleStaging: a LevelDB backup carried out by the
// database's server (through its control socket) removes the staging
// directories killed backups left, as an offline backup does: the
// .durusbdb-backup-* in OUT's parent (directory and stream output) and,
// for an existing empty OUT, the .durusbdb-staging-* inside it, but not
// one a running process holds (flocked). Before the fix the server-side
// backup left them all (docs/OPERATIONS.md says the next backup into the
// same parent removes them), and a stale staging directory inside OUT
// ended in the backup, unlisted in its manifest.
func TestLiveBackupRemovesStaleStaging(t *testing.T) {
	bin := cliBinary(t)
	base := t.TempDir()
	dir := filepath.Join(base, "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, bin, dir, backend.LevelDB)
	defer p.quit(t)

	// stale makes a staging directory with a file in it, as a backup
	// killed with SIGKILL leaves it (nobody holds its flock).
	stale := func(path string) string {
		t.Helper()
		if err := os.Mkdir(path, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "objects.ldb"), []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, c := range []struct {
		name, out string
		args      []string
		existing  bool // OUT is an existing empty directory (a mount point)
	}{
		{name: "directory", out: "b"},
		{name: "stream", out: "b.tar.sz", args: []string{"--stream"}},
		{name: "existing directory", out: "b", existing: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, c.out)
			gone := []string{stale(filepath.Join(parent, ".durusbdb-backup-1234567"))}
			held := stale(filepath.Join(parent, ".durusbdb-backup-7654321"))
			f, err := os.Open(held)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Fatal(err)
			}
			if c.existing {
				if err := os.Mkdir(out, 0o755); err != nil {
					t.Fatal(err)
				}
				gone = append(gone, stale(filepath.Join(out, ".durusbdb-staging-1234567")))
			}
			args := append([]string{"backup", "--dir", dir}, c.args...)
			res := mustTool(t, bin, append(args, out)...)
			if !strings.Contains(res, "snapshot by the server") {
				t.Fatalf("the backup was not carried out by the server:\n%s", res)
			}
			for _, g := range gone {
				if _, err := os.Stat(g); err == nil {
					t.Errorf("the backup by the server left the stale staging directory %s", g)
				}
			}
			if _, err := os.Stat(held); err != nil {
				t.Errorf("the backup removed %s, which a running process holds: %v", held, err)
			}
			if code, o, e := runTool(t, bin, "restore", out, filepath.Join(parent, "restored")); code != 0 {
				t.Fatalf("restore of the backup: exit %d\n%s\n%s", code, o, e)
			}
		})
	}
}
