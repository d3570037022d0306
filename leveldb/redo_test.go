package leveldb_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmhodges/levigo"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

// openRedo opens dir with a redo log of size bytes and no background
// checkpoints, so that a test decides when LevelDB is made durable.
func openRedo(t *testing.T, dir string, size int64) *leveldb.Store {
	t.Helper()
	opts := kvtest.Options(dir)
	opts.Create = true
	s, err := leveldb.OpenStoreRedo(opts, size, 0)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// commitFlush commits puts (value nil: delete) without sync, then Flushes:
// the commit is acknowledged when this returns.
func commitFlush(t *testing.T, s *leveldb.Store, kvs map[string][]byte) {
	t.Helper()
	err := kv.Update(t.Context(), s, kv.NoSync, func(tx kv.Txn) error {
		for k, v := range kvs {
			var err error
			if v == nil {
				err = tx.Delete(kvtest.Objects, []byte(k))
			} else {
				err = tx.Put(kvtest.Objects, []byte(k), v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

// copyLevelDB copies LevelDB's own files (not its locks, not the redo log)
// from src to dst: what a power loss would leave of the database if the
// operating system had written nothing since the last checkpoint.
func copyLevelDB(t *testing.T, src, dst string) {
	t.Helper()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		n := e.Name()
		if n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") || strings.HasSuffix(n, ".log") || strings.HasSuffix(n, ".ldb") {
			copyFile(t, filepath.Join(src, n), filepath.Join(dst, n))
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	os.Remove(dst)
	if _, err := leveldb.CopyFile(src, dst); err != nil {
		t.Fatal(err)
	}
}

func val(i int) []byte { return []byte(fmt.Sprintf("value-%d", i)) }

// TestRedoReplayAfterPowerLoss: LevelDB as it was at the last checkpoint
// plus the redo log as the acknowledged Flushes left it must give every
// acknowledged commit back (puts, overwrites and deletes).
func TestRedoReplayAfterPowerLoss(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	s := openRedo(t, a, 1<<20)
	for i := 0; i < 10; i++ {
		commitFlush(t, s, map[string][]byte{fmt.Sprintf("k%02d", i): val(i)})
	}
	if err := s.Checkpoint(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	copyLevelDB(t, a, b)
	for i := 10; i < 30; i++ {
		commitFlush(t, s, map[string][]byte{fmt.Sprintf("k%02d", i): val(i)})
	}
	commitFlush(t, s, map[string][]byte{"k05": []byte("overwritten"), "k06": nil, "k12": nil})
	copyFile(t, filepath.Join(a, leveldb.RedoFile), filepath.Join(b, leveldb.RedoFile))
	if _, seqs, err := leveldb.RedoLog(b); err != nil || len(seqs) != 21 {
		t.Fatalf("redo log holds %d records (%v), want the 21 commits since the checkpoint", len(seqs), err)
	}

	// A read-only open replays into its private copy and writes nothing
	// here: the redo log still holds every record afterwards.
	ro := kvtest.Options(b)
	ro.ReadOnly = true
	rs, err := leveldb.OpenStore(ro)
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	if v, err := get(t, rs, kvtest.Objects, []byte("k29")); err != nil || !bytes.Equal(v, val(29)) {
		t.Errorf("read-only open: k29 = %q, %v; want the acknowledged %q", v, err, val(29))
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	if _, seqs, err := leveldb.RedoLog(b); err != nil || len(seqs) != 21 {
		t.Fatalf("after a read-only open the redo log holds %d records (%v), want 21", len(seqs), err)
	}

	r := openRedo(t, b, 1<<20)
	for i := 0; i < 30; i++ {
		k := fmt.Sprintf("k%02d", i)
		v, err := get(t, r, kvtest.Objects, []byte(k))
		switch {
		case i == 6 || i == 12:
			if !errors.Is(err, kv.ErrNotFound) {
				t.Errorf("%s: deleted by an acknowledged commit, read %q, %v", k, v, err)
			}
		case i == 5:
			if string(v) != "overwritten" {
				t.Errorf("%s = %q, %v; want the acknowledged overwrite", k, v, err)
			}
		case err != nil || !bytes.Equal(v, val(i)):
			t.Errorf("%s = %q, %v; want %q (acknowledged)", k, v, err, val(i))
		}
	}
	// The replay is durable and the ring empty: a second open replays nothing.
	if start, seqs, err := leveldb.RedoLog(b); err != nil || len(seqs) != 0 || start != 32 {
		t.Fatalf("after the replayed open: ring starts at %d with %d records (%v), want 32 and 0", start, len(seqs), err)
	}
}

// TestRedoReplayKeepsLaterCommit: LevelDB can lose an acknowledged write
// and keep a later, unacknowledged one (a rotated log not yet synced).
// The replay restores the lost commit but must not write its older value
// over a key the kept commit wrote.
func TestRedoReplayKeepsLaterCommit(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	s := openRedo(t, a, 1<<20)
	commitFlush(t, s, map[string][]byte{"x": []byte("x0")})
	if err := s.Checkpoint(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	copyLevelDB(t, a, b)
	commitFlush(t, s, map[string][]byte{"x": []byte("x1"), "y": []byte("y1")}) // acknowledged, lost by LevelDB
	later := leveldb.NextSeq(s)
	copyFile(t, filepath.Join(a, leveldb.RedoFile), filepath.Join(b, leveldb.RedoFile))

	// The commit after it reached LevelDB's log but not the redo log.
	opts := levigo.NewOptions()
	defer opts.Close()
	db, err := levigo.Open(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	wb := levigo.NewWriteBatch()
	wb.Put([]byte("ox"), []byte("x2"))
	wb.Put([]byte("oz"), []byte("z2"))
	mk, mv := leveldb.Marker(later, []byte("ox"), []byte("oz"))
	wb.Put(mk, mv)
	wo := levigo.NewWriteOptions()
	wo.SetSync(true)
	err = db.Write(wo, wb)
	wb.Close()
	wo.Close()
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	r := openRedo(t, b, 1<<20)
	for k, want := range map[string]string{"x": "x2", "y": "y1", "z": "z2"} {
		if v, err := get(t, r, kvtest.Objects, []byte(k)); err != nil || string(v) != want {
			t.Errorf("%s = %q, %v; want %q", k, v, err, want)
		}
	}
	if got := leveldb.NextSeq(r); got != later+1 {
		t.Errorf("next seq after the replay %d, want %d (after the kept commit)", got, later+1)
	}
}

// TestFlushSyncsRedoLogOnly: a Flush after a commit writes its redo record
// and leaves LevelDB's growing log alone (its fsync is what the redo log
// saves); a Flush with nothing new writes nothing.
func TestFlushSyncsRedoLogOnly(t *testing.T) {
	dir := t.TempDir()
	s := openRedo(t, dir, 1<<20)
	before := leveldb.CurrentLogSyncs(s)
	for i := 0; i < 5; i++ {
		commitFlush(t, s, map[string][]byte{fmt.Sprintf("k%d", i): val(i)})
	}
	if n := leveldb.CurrentLogSyncs(s) - before; n != 0 {
		t.Errorf("5 Flushes fsynced LevelDB's current log %d times, want 0", n)
	}
	_, seqs, err := leveldb.RedoLog(dir)
	if err != nil || len(seqs) != 5 {
		t.Fatalf("redo log holds %v (%v), want 5 records", seqs, err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, again, _ := leveldb.RedoLog(dir); len(again) != 5 {
		t.Errorf("a Flush with nothing new wrote %d records", len(again)-5)
	}
}

// TestRedoRingFull: commits that outgrow the ring between checkpoints make
// Flush checkpoint instead, and nothing is lost across reopen.
func TestRedoRingFull(t *testing.T) {
	dir := t.TempDir()
	s := openRedo(t, dir, 64<<10) // 56 KiB of ring
	big := bytes.Repeat([]byte("r"), 3000)
	for i := 0; i < 100; i++ {
		commitFlush(t, s, map[string][]byte{fmt.Sprintf("k%03d", i): append([]byte(fmt.Sprint(i)), big...)})
	}
	if fulls, _ := leveldb.RedoStats(s); fulls == 0 {
		t.Fatalf("300 KB of commits through a 56 KiB ring never found it full")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openRedo(t, dir, 64<<10)
	for i := 0; i < 100; i++ {
		want := append([]byte(fmt.Sprint(i)), big...)
		if v, err := get(t, r, kvtest.Objects, []byte(fmt.Sprintf("k%03d", i))); err != nil || !bytes.Equal(v, want) {
			t.Fatalf("k%03d after reopen: %v", i, err)
		}
	}
}

// TestBigCommitMarker: a commit too big for the redo queue gets no record;
// it keeps its marker while the ring holds records a replay could apply
// (their keys must not be written over its newer values), and goes without
// one once the ring is empty (a bulk import's batches: markers in every
// batch make LevelDB's tables overlap and its compactions rewrite all).
func TestBigCommitMarker(t *testing.T) {
	s := openRedo(t, t.TempDir(), 1<<20)
	commit := func(n int) uint64 {
		t.Helper()
		seq := leveldb.NextSeq(s)
		kvs := map[string][]byte{}
		for i := 0; i < n; i++ {
			kvs[fmt.Sprintf("k%06d", i)] = bytes.Repeat([]byte("v"), 100)
		}
		commitFlush(t, s, kvs)
		return seq
	}
	marked := func(seq uint64) bool {
		t.Helper()
		ok, err := leveldb.Marked(s, seq)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	small := commit(1)
	if !marked(small) {
		t.Fatalf("small commit %d has no marker", small)
	}
	big := commit(5000) // ~800 KB of overlay: more than half the ring
	if !marked(big) {
		t.Fatalf("big commit %d, written while the ring held commit %d's record, has no marker", big, small)
	}
	if err := s.Checkpoint(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if marked(small) || marked(big) {
		t.Fatalf("markers of commits %d and %d still there after a checkpoint", small, big)
	}
	bulk := commit(5000)
	if marked(bulk) {
		t.Fatalf("big commit %d, written with the ring empty, has a marker", bulk)
	}
}
