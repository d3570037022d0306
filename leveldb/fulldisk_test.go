package leveldb_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/internal/mounttest"
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
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=32m"); err != nil {
		mounttest.Unavailable(t, "cannot mount a small tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	dir := filepath.Join(mnt, "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, kvtest.Options(dir))
	big := make([]byte, 64<<10)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 32 { // 2 MiB in LevelDB's log, incompressible
		for j := range big {
			big[j] = byte(rnd.Uint32())
		}
		big[0] = byte(i)
		put(t, s, "objects", []byte{byte(i)}, big)
	}
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
		if err != nil || len(v) != len(big) || v[0] != byte(i) {
			t.Fatalf("record %d after the full disk: %d bytes, %v", i, len(v), err)
		}
	}
}
