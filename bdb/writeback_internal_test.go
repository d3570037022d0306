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
	dir := t.TempDir()
	s, err := OpenStore(kvtest.Options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = kv.Update(context.Background(), s, kv.NoSync, func(tx kv.Txn) error {
		for i := range 5000 {
			if err := tx.Put(kvtest.Objects, binary.BigEndian.AppendUint64(nil, uint64(i)), bytes.Repeat([]byte{byte(i)}, 200)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
	files, _ := filepath.Glob(filepath.Join(dir, "*.db"))
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
