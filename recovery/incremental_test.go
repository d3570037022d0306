//go:build bdb

package recovery

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// commitBig commits n objects of size bytes each (oids from first on,
// unreferenced: garbage for a later collection, fine for these tests)
// through an engine opened on dir that keeps or removes its logs at a
// final checkpoint.
func commitBig(t *testing.T, dir string, n, size int, keepLogs bool) map[uint64][]byte {
	t.Helper()
	ctx := context.Background()
	o := engineOpts("")
	o.Create = false
	o.Checkpoint.KeepLogs = keepLogs
	db, err := engine.Open(ctx, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	first, err := db.AllocOIDs(n)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]byte{}
	for i := 0; i < n; i += 50 {
		var recs [][]byte
		for j := i; j < n && j < i+50; j++ {
			oid := first + uint64(j)
			r := record.Build(oid, chainData(7, j, size))
			want[oid] = r
			recs = append(recs, r)
		}
		p, err := db.Commit(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return want
}

// loadAll checks that every record of want is in the database in dir.
func loadAll(t *testing.T, dir string, want map[uint64][]byte) {
	t.Helper()
	o := engineOpts("")
	o.Create = false
	o.ReadOnly = true
	db, err := engine.Open(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for oid, r := range want {
		got, err := db.Load(oid)
		if err != nil || !bytes.Equal(got, r) {
			t.Fatalf("oid %d in %s: %v", oid, dir, err)
		}
	}
}

// TestIncrementalOfflineChainVerifies: a full backup plus two offline
// increments restores to the newest state; backup --verify passes on it
// and, after one byte of an increment's log file changes, fails naming
// that file (library and command, exit status non-zero).
func TestIncrementalOfflineChainVerifies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := fill(t, dir, "bdb", 50)
	out := filepath.Join(t.TempDir(), "b")
	if _, err := Backup(ctx, dir, out, BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	for k, v := range commitBig(t, dir, 300, 2000, true) {
		want[k] = v
	}
	r1, err := BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Manifest.Increment != 1 || r1.Manifest.Mode != "offline" {
		t.Fatalf("first increment: %+v", r1.Manifest)
	}
	for k, v := range commitBig(t, dir, 300, 2000, true) {
		want[k] = v
	}
	// What a killed increment leaves: a staging directory in increments/,
	// which neither blocks nor joins the next one.
	stale := filepath.Join(out, IncrementsDir, stagePrefix+"999")
	if err := os.MkdirAll(stale, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "log.0000000001"), []byte("partial"), 0o640); err != nil {
		t.Fatal(err)
	}
	r2, err := BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Fatalf("the staging directory of a killed increment is still there")
	}
	if r2.Manifest.Increment != 2 {
		t.Fatalf("second increment: %+v", r2.Manifest)
	}
	raw1, _ := os.ReadFile(filepath.Join(out, IncrementsDir, "000001", ManifestName))
	if r2.Manifest.Previous != manifestSum(raw1) {
		t.Fatalf("increment 2 does not link to increment 1")
	}
	vr, err := VerifyBackup(ctx, out, VerifyOptions{Options: quietOpts()})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if vr.Increments != 2 || !vr.Check.OK() {
		t.Fatalf("verify result: %+v", vr)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), stagePrefix+"*")); len(left) != 0 {
		t.Fatalf("verify left %v", left)
	}
	restored := filepath.Join(t.TempDir(), "r")
	rr, err := Restore(ctx, out, restored, RestoreOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Increments != 2 {
		t.Fatalf("restore applied %d increments", rr.Increments)
	}
	verifyDB(t, restored, nil)
	loadAll(t, restored, want)

	// Damage one byte of a log file of increment 2.
	bad := filepath.Join(r2.Out, r2.Manifest.Files[len(r2.Manifest.Files)-1].Name)
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(bad, b, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyBackup(ctx, out, VerifyOptions{Options: quietOpts()})
	if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("verify of a damaged increment: %v (want the path %s)", err, bad)
	}
	cmd := exec.Command(durusbdbBin(t), "backup", "--verify", out)
	outb, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(outb), bad) {
		t.Fatalf("durusbdb backup --verify of a damaged backup: %v\n%s", err, outb)
	}
	if _, err := Restore(ctx, out, filepath.Join(t.TempDir(), "r2"), RestoreOptions{Options: quietOpts()}); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("restore of a damaged increment: %v", err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(bad, b, 0o640); err != nil {
		t.Fatal(err)
	}
	// A changed full-backup manifest breaks the link of increment 1.
	mp := filepath.Join(out, ManifestName)
	mb, _ := os.ReadFile(mp)
	if err := os.WriteFile(mp, bytes.Replace(mb, []byte("mode offline"), []byte("mode hot"), 1), 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyBackup(ctx, out, VerifyOptions{Options: quietOpts()})
	if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), filepath.Join(out, IncrementsDir, "000001", ManifestName)) {
		t.Fatalf("verify with a changed base manifest: %v", err)
	}
}

// TestIncrementalRefusesRemovedLogs: when log files written since the
// backup were removed (checkpoints without --keep-logs), an increment is
// refused with ErrFullBackupNeeded, saying why and what to do, and
// leaves nothing in the backup.
func TestIncrementalRefusesRemovedLogs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fill(t, dir, "bdb", 20)
	out := filepath.Join(t.TempDir(), "b")
	res, err := Backup(ctx, dir, out, BackupOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	_, last := res.Manifest.LogRange()
	// More than one log file (10 MiB each) of commits, then a checkpoint
	// that removes the log files no longer needed.
	commitBig(t, dir, 3000, 8000, false)
	if _, err := os.Stat(filepath.Join(dir, last)); err == nil {
		t.Fatalf("%s was not removed by the checkpoint", last)
	}
	_, err = BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()})
	if !errors.Is(err, ErrFullBackupNeeded) || !strings.Contains(err.Error(), "--keep-logs") ||
		!strings.Contains(err.Error(), "full backup") || !strings.Contains(err.Error(), last) {
		t.Fatalf("increment after log removal: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(out, IncrementsDir))
	if len(ents) != 0 {
		t.Fatalf("a refused increment left %v", ents)
	}
	if _, err := VerifyBackup(ctx, out, VerifyOptions{Options: quietOpts()}); err != nil {
		t.Fatalf("the backup after a refused increment: %v", err)
	}
}

// TestLevelDBFullBackupsOnly: --incremental and --until on LevelDB fail
// with ErrNoLogArchive naming the reason and what to do instead.
func TestLevelDBFullBackupsOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fill(t, dir, "leveldb", 10)
	out := filepath.Join(t.TempDir(), "b")
	if _, err := Backup(ctx, dir, out, BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	_, err := BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()})
	if !errors.Is(err, ErrNoLogArchive) || !strings.Contains(err.Error(), "no log archive") || !strings.Contains(err.Error(), "full backup") {
		t.Fatalf("leveldb increment: %v", err)
	}
	_, err = Restore(ctx, out, filepath.Join(t.TempDir(), "r"), RestoreOptions{Options: quietOpts(), Until: time.Now()})
	if !errors.Is(err, ErrNoLogArchive) {
		t.Fatalf("leveldb restore --until: %v", err)
	}
	b, err := exec.Command(durusbdbBin(t), "backup", "--dir", dir, "--incremental", out).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "LevelDB keeps no log archive") {
		t.Fatalf("durusbdb backup --incremental of a LevelDB database: %v\n%s", err, b)
	}
	if _, err := VerifyBackup(ctx, out, VerifyOptions{Options: quietOpts()}); err != nil {
		t.Fatalf("verify a leveldb backup: %v", err)
	}
}

// TestIncrementalHotPointInTime: a server running with --keep-logs (and
// no background checkpoint during the test); a hot full backup and a hot
// increment (which writes a checkpoint), then commit A, a time T, commit
// B, a second increment, commit C, a third. Restore --until T has A but
// neither B nor C; a restore without --until has all three.
func TestIncrementalHotPointInTime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir, "bdb", "--keep-logs", "--checkpoint-interval", "1h")
	cc := setupRoot(t, srv.addr, 1, 300)[0]
	commit := func() ack {
		t.Helper()
		a, st, err := cc.commitOne()
		if err != nil || st != wire.StatusOK {
			t.Fatalf("commit: %q %v", st, err)
		}
		return a
	}
	for i := 0; i < 20; i++ {
		commit()
	}
	out := filepath.Join(t.TempDir(), "b")
	if res, err := Backup(ctx, dir, out, BackupOptions{Options: quietOpts()}); err != nil || res.Manifest.Mode != "hot" {
		t.Fatalf("hot full backup: %v", err)
	}
	if _, err := BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	a := commit()
	// Log records carry whole seconds: T is in the second after A's,
	// and B in a later one.
	until := a.at.Truncate(time.Second).Add(1500 * time.Millisecond)
	// Not a wait for an event: the clock has to pass T so that B's log
	// record carries a later second.
	time.Sleep(time.Until(until.Add(1200 * time.Millisecond)))
	b := commit()
	r1, err := BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Manifest.Mode != "hot" {
		t.Fatalf("increment mode %q, want hot", r1.Manifest.Mode)
	}
	c := commit()
	if _, err := BackupIncremental(ctx, dir, out, BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	srv.quit(t)

	has := func(dir string, x ack) bool {
		t.Helper()
		o := engineOpts("")
		o.Create = false
		o.ReadOnly = true
		db, err := engine.Open(ctx, dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		got, err := db.Load(x.oid)
		return err == nil && bytes.Equal(got, x.rec)
	}
	pit := filepath.Join(t.TempDir(), "pit")
	cmd := exec.Command(durusbdbBin(t), "restore", "--until", until.UTC().Format(time.RFC3339), out, pit)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("durusbdb restore --until: %v\n%s", err, b)
	}
	if !has(pit, a) || has(pit, b) || has(pit, c) {
		t.Fatalf("restore --until %v: A %v (want true), B %v, C %v (want false)", until, has(pit, a), has(pit, b), has(pit, c))
	}
	all := filepath.Join(t.TempDir(), "all")
	if _, err := Restore(ctx, out, all, RestoreOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	if !has(all, a) || !has(all, b) || !has(all, c) {
		t.Fatalf("restore of the chain: A %v B %v C %v (want all)", has(all, a), has(all, b), has(all, c))
	}
	// A time before any checkpoint of the backup's logs: refused with
	// the reason, and the target left empty for another try.
	early := filepath.Join(t.TempDir(), "early")
	_, err = Restore(ctx, out, early, RestoreOptions{Options: quietOpts(), Until: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err == nil || !strings.Contains(err.Error(), "checkpoint") {
		t.Fatalf("restore --until 2020: %v", err)
	}
	if _, serr := os.Stat(early); serr == nil {
		t.Fatalf("a failed restore --until left %s", early)
	}
}
