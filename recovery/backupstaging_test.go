//go:build bdb

package recovery

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stagingIn lists the staging entries in parent.
func stagingIn(t *testing.T, parent string) []string {
	t.Helper()
	l, err := filepath.Glob(filepath.Join(parent, stagePrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// treeSize is the number of bytes in the regular files under p.
func treeSize(p string) int64 {
	var n int64
	filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestKilledBackupDoesNotBlockTheNext: a `durusbdb backup` process killed
// with SIGKILL half-way (directory and stream output) leaves a staging
// directory; the next backup to the same OUT succeeds, removes it, and
// leaves nothing but OUT.
func TestKilledBackupDoesNotBlockTheNext(t *testing.T) {
	bin := durusbdbBin(t)
	dir := t.TempDir()
	fill(t, dir, "bdb", 10)
	commitBig(t, dir, 6000, 8000, true) // about 50 MB of records
	for _, stream := range []bool{false, true} {
		parent := t.TempDir()
		out := filepath.Join(parent, "b")
		args := []string{"backup", "--dir", dir}
		if stream {
			args = append(args, "--stream")
		}
		args = append(args, out)
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
		deadline := time.Now().Add(60 * time.Second)
		for !killed && time.Now().Before(deadline) {
			select {
			case err := <-done:
				t.Fatalf("stream %v: the backup finished (%v) before it could be killed half-way", stream, err)
			default:
			}
			for _, s := range stagingIn(t, parent) {
				if treeSize(s) > 8<<20 {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			}
			time.Sleep(time.Millisecond)
		}
		if !killed {
			t.Fatal("no staging directory grew within 60 s")
		}
		err := <-done
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("stream %v: backup process: %v, want killed by SIGKILL", stream, err)
		}
		if len(stagingIn(t, parent)) == 0 {
			t.Fatalf("stream %v: the killed backup left no staging directory; the test did not interrupt it", stream)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Fatalf("stream %v: the killed backup left its output %s", stream, out)
		}
		b, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("stream %v: backup after a killed one: %v\n%s", stream, err, b)
		}
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 || ents[0].Name() != "b" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("stream %v: after the second backup the parent holds %v, want only b", stream, names)
		}
		if _, err := readAnyManifest(out); err != nil {
			t.Fatalf("stream %v: %v", stream, err)
		}
	}
}

// TestCancelledBackupLeavesNothing: a backup cancelled half-way removes
// its staging directory and creates no output.
func TestCancelledBackupLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, "bdb", 100)
	for _, stream := range []bool{false, true} {
		parent := t.TempDir()
		out := filepath.Join(parent, "b")
		ctx, cancel := context.WithCancel(context.Background())
		opts := quietOpts()
		opts.hook = func(point string) {
			if point == "database files copied" {
				cancel()
			}
		}
		_, err := Backup(ctx, dir, out, BackupOptions{Options: opts, Stream: stream})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled backup: %v", err)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 0 {
			t.Fatalf("stream %v: a cancelled backup left %v", stream, ents)
		}
	}
}

// TestStaleStagingRemovedUnlessLocked: a backup removes staging
// directories left by killed backups, but not one that a running backup
// (a process holding its flock) is writing.
func TestStaleStagingRemovedUnlessLocked(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, "bdb", 10)
	parent := t.TempDir()
	stale := filepath.Join(parent, stagePrefix+"111")
	busy := filepath.Join(parent, stagePrefix+"222")
	for _, d := range []string{stale, busy} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "objects.db"), make([]byte, 1<<20), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(busy)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := Backup(context.Background(), dir, filepath.Join(parent, "b"), BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatal("the stale staging directory is still there")
	}
	if _, err := os.Stat(filepath.Join(busy, "objects.db")); err != nil {
		t.Fatalf("the staging directory of a running backup was removed: %v", err)
	}
}

// TestBackupKeepRetention: --keep N keeps the newest N complete backups
// of the database among OUT's siblings (directories and stream files),
// never removes the one just written, and never touches anything else:
// files, directories without a manifest, backups of another database.
func TestBackupKeepRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fill(t, dir, "bdb", 10)
	other := t.TempDir()
	fill(t, other, "bdb", 5)
	parent := t.TempDir()
	backup := func(name string, stream bool, keep int, src string) *BackupResult {
		t.Helper()
		res, err := Backup(ctx, src, filepath.Join(parent, name), BackupOptions{Options: quietOpts(), Stream: stream, Keep: keep})
		if err != nil {
			t.Fatalf("backup %s: %v", name, err)
		}
		return res
	}
	backup("other-db", false, 0, other)
	if err := os.MkdirAll(filepath.Join(parent, "partial"), 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(parent, "partial", "objects.db"), []byte("x"), 0o640)
	os.WriteFile(filepath.Join(parent, "notes.txt"), []byte("keep me"), 0o640)
	backup("2026-01-01", false, 0, dir)
	backup("2026-01-02.tar.sz", true, 0, dir)
	res := backup("2026-01-03", false, 2, dir)
	if len(res.Removed) != 1 || filepath.Base(res.Removed[0]) != "2026-01-01" {
		t.Fatalf("keep 2 removed %v, want the oldest, 2026-01-01", res.Removed)
	}
	res = backup("2026-01-04", false, 1, dir)
	if len(res.Removed) != 2 {
		t.Fatalf("keep 1 removed %v, want 2026-01-02.tar.sz and 2026-01-03", res.Removed)
	}
	ents, _ := os.ReadDir(parent)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if got := strings.Join(names, " "); got != "2026-01-04 notes.txt other-db partial" {
		t.Fatalf("after retention the parent holds %q", got)
	}
}

// TestBackupKeepVerifiesFirst: with --keep, a new backup is verified
// (trial restore and check) before retention removes older ones: a
// backup of a damaged database (a page that fails its checksum, which the
// copy carries over) fails with ErrBadBackup and every older backup
// stays. A QA round's nightly `backup --keep N` would have rotated the
// good backups out for damaged ones.
func TestBackupKeepVerifiesFirst(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fill(t, dir, "bdb", 200)
	parent := t.TempDir()
	if _, err := Backup(ctx, dir, filepath.Join(parent, "2026-01-01"), BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	// Damage a page in the middle of objects.db (Berkeley DB keeps page
	// checksums: the damage is detectable, and the copy carries it).
	path := filepath.Join(dir, "objects.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b)/2 + 100; i < len(b)/2+108; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	res, err := Backup(ctx, dir, filepath.Join(parent, "2026-01-02"), BackupOptions{Options: quietOpts(), Keep: 1})
	if !errors.Is(err, ErrBadBackup) {
		t.Fatalf("backup --keep 1 of a damaged database: %v, want ErrBadBackup", err)
	}
	if res != nil && len(res.Removed) > 0 {
		t.Fatalf("retention removed %v after a backup that does not verify", res.Removed)
	}
	if _, err := os.Stat(filepath.Join(parent, "2026-01-01", ManifestName)); err != nil {
		t.Fatalf("the older backup is gone: %v", err)
	}
}
