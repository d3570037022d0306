package leveldb_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

// TestOpenOnFullDisk: LevelDB's open replays its log into a new table, so
// a database whose server stopped on a full disk cannot open until there
// is room. The error says so (kv.ErrNoSpace, not damage) and how much
// room, naming the directory; once space is freed the open works and
// nothing is lost.
func TestOpenOnFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "32m")
	dir := filepath.Join(mnt, "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, kvtest.Options(dir))
	putIncompressible(t, s, 32) // 2 MiB in LevelDB's log
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize), 0o644); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	_, err := leveldb.OpenStore(kvtest.Options(dir))
	if err == nil {
		t.Fatal("opened on a full disk: the test does not exercise LevelDB's replay")
	}
	if !errors.Is(err, kv.ErrNoSpace) || errors.Is(err, kv.ErrCorrupt) {
		t.Fatalf("open on a full disk: %v; want kv.ErrNoSpace and no corruption", err)
	}
	for _, want := range []string{"free at least", "MiB", "file system of " + dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("open on a full disk: %q does not say %q", err, want)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, kvtest.Options(dir))
	defer s.Close()
	for i := range 32 {
		v, err := get(t, s, "objects", []byte{byte(i)})
		if err != nil || len(v) != incompressibleSize || v[0] != byte(i) {
			t.Fatalf("record %d after the full disk: %d bytes, %v", i, len(v), err)
		}
	}
}

// TestCheckpointFailureLoggedOnce: a background checkpoint that keeps
// failing (here the directory was removed under the store) is logged
// once, then once a minute, not at every tick (five a second).
func TestCheckpointFailureLoggedOnce(t *testing.T) {
	var logs testlog.Buffer
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := kvtest.Options(dir)
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err := leveldb.OpenStoreRedo(opts, 1<<20, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(t, s, "objects", []byte{1}, []byte("x"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "background checkpoint failed") && time.Now().Before(deadline) {
		put(t, s, "objects", []byte{1}, []byte("y")) // something to checkpoint
		time.Sleep(5 * time.Millisecond)
	}
	for range 40 { // 40 more ticks' worth of failures
		put(t, s, "objects", []byte{1}, []byte("z"))
		time.Sleep(5 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "background checkpoint failed"); n != 1 {
		t.Fatalf("%d failure lines in 200 ms of failing checkpoints, want 1:\n%s", n, logs.String())
	}
}
