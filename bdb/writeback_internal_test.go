//go:build bdb

package bdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// TestSpreadWrites: before a checkpoint the cache's dirty pages are written
// to their files and every database file is pushed to the disk in chunks
// (writeBackChunk bytes each), so that the checkpoint's fsyncs find little
// left to write.
func TestSpreadWrites(t *testing.T) {
	s := storeWithPuts(t, 5000, func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 200) })
	if st, err := s.env.env.MpoolStat(); err != nil || st.PagesDirty == 0 {
		t.Fatalf("no dirty page after 5000 puts: %+v %v", st, err)
	}
	// A checkpoint spreads its writes.
	if err := s.Checkpoint(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if n := s.env.spreadPages.Load(); n == 0 {
		t.Fatal("the checkpoint wrote no page ahead")
	}
	if err := kv.Update(context.Background(), s, kv.NoSync, func(tx kv.Txn) error {
		return tx.Put(kvtest.Objects, []byte("k"), make([]byte, 200))
	}); err != nil {
		t.Fatal(err)
	}
	pages, chunks, err := s.env.spreadWrites()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.env.env.MpoolStat(); err != nil || st.PagesDirty != 0 {
		t.Fatalf("dirty pages left after the spread writes: %+v %v", st, err)
	}
	files, _ := filepath.Glob(filepath.Join(s.dir, "*.db"))
	want := 0
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		want += int((fi.Size() + writeBackChunk - 1) / writeBackChunk)
	}
	if pages == 0 || len(files) == 0 || chunks != want {
		t.Fatalf("%d pages trickled, %d chunks pushed for %d files; want pages and %d chunks", pages, chunks, len(files), want)
	}
	if err := s.Checkpoint(context.Background(), true); err != nil {
		t.Fatal(err)
	}
}

// TestWriteBack: a file is pushed in chunk-sized steps that cover it; a
// file that is gone is skipped.
func TestWriteBack(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.db")
	if err := os.WriteFile(p, make([]byte, 10*4096+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := writeBack(p, 4096); err != nil || n != 11 {
		t.Fatalf("writeBack: %d chunks, %v; want 11", n, err)
	}
	if n, err := writeBack(p+".gone", 4096); err != nil || n != 0 {
		t.Fatalf("writeBack of a missing file: %d, %v", n, err)
	}
}

// storeWithPuts opens a store in a new directory (closed at the test's
// end) and puts n objects, value(i) under key i, in one transaction
// committed without sync: their pages stay dirty in the cache.
func storeWithPuts(t *testing.T, n int, value func(i int) []byte) *Store {
	t.Helper()
	s, err := OpenStore(kvtest.Options(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	err = kv.Update(context.Background(), s, kv.NoSync, func(tx kv.Txn) error {
		for i := range n {
			if err := tx.Put(kvtest.Objects, binary.BigEndian.AppendUint64(nil, uint64(i)), value(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
