package recovery

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
)

// entries lists the names in dir, sorted.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestRestoreIntoItsOwnBackupRefused: a restore whose target is the
// backup directory, a new directory inside it (directly or through a
// symbolic link), or a directory holding the backup is refused before
// anything is written, naming both paths; the backup stays whole (it
// restores and verifies afterwards). Before the fix `restore B B/restored`
// succeeded and left B/restored in the backup, which every later restore
// and verify of B refused as a file the manifest does not list.
func TestRestoreIntoItsOwnBackupRefused(t *testing.T) {
	kind := backend.Compiled()[0]
	ctx := context.Background()
	src := t.TempDir()
	want := fill(t, src, kind, 30)
	tmp := t.TempDir()
	bdir := filepath.Join(tmp, "bdir")
	if _, err := Backup(ctx, src, bdir, BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(bdir, link); err != nil {
		t.Fatal(err)
	}
	holder := t.TempDir() // a directory that holds a copy of the backup
	if err := os.Rename(copyTree(t, bdir), filepath.Join(holder, "b")); err != nil {
		t.Fatal(err)
	}
	before := entries(t, bdir)
	cases := []struct {
		name, in, dir, msg string
	}{
		{"new directory inside the backup", bdir, filepath.Join(bdir, "restored"), "inside it"},
		{"nested directory inside the backup", bdir, filepath.Join(bdir, "increments", "x"), "inside it"},
		{"the backup directory itself", bdir, bdir, "inside it"},
		{"through a symbolic link", bdir, filepath.Join(link, "restored"), "inside it"},
		{"target holds the backup", filepath.Join(holder, "b"), holder, "the backup is inside the target directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Restore(ctx, c.in, c.dir, RestoreOptions{Options: quietOpts()})
			if err == nil {
				t.Fatalf("restore %s into %s succeeded", c.in, c.dir)
			}
			if msg := err.Error(); !strings.Contains(msg, c.msg) || !strings.Contains(msg, c.in) || !strings.Contains(msg, c.dir) {
				t.Fatalf("error %q does not say %q naming %s and %s", msg, c.msg, c.in, c.dir)
			}
			if got := entries(t, bdir); !slices.Equal(got, before) {
				t.Fatalf("the refused restore changed the backup: %v, was %v", got, before)
			}
		})
	}
	// The backup is whole: it verifies and restores.
	if _, err := VerifyBackup(ctx, bdir, VerifyOptions{Options: quietOpts()}); err != nil {
		t.Fatalf("verify after the refused restores: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(ctx, bdir, dst, RestoreOptions{Options: quietOpts()}); err != nil {
		t.Fatalf("restore after the refused restores: %v", err)
	}
	verifyDB(t, dst, want)
	// A stream backup beside the target's parent is fine.
	sfile := filepath.Join(tmp, "b.tar.sz")
	if _, err := Backup(ctx, src, sfile, BackupOptions{Options: quietOpts(), Stream: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, sfile, filepath.Join(tmp, "fromstream"), RestoreOptions{Options: quietOpts()}); err != nil {
		t.Fatalf("restore of a stream into its sibling: %v", err)
	}
}
