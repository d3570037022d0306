//go:build bdb

package bdb

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// TestRoomPastLastPage: every database file of a writable environment
// has blocks allocated past the last page libdb's cache has created, pages
// not yet written out included, by at least half of its room (roomFor),
// so that writing those pages and the next ones never needs a block the
// file system may no longer have (a torn page on a full disk).
func TestRoomPastLastPage(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(kvtest.Options(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// 6 MB of new pages in the 8 MiB cache, none written out yet.
	err = kv.Update(context.Background(), s, kv.NoSync, func(tx kv.Txn) error {
		for i := range 30 {
			if err := tx.Put(kvtest.Objects, binary.BigEndian.AppendUint64(nil, uint64(i)), make([]byte, 200<<10)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ends := s.env.logicalEnds()
	if len(ends) == 0 {
		t.Fatal("no database file's end known")
	}
	s.env.room.topUp()
	for name, end := range ends {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if room := roomFor(st.Size); st.Blocks*512 < end+room/2 {
			t.Errorf("%s: blocks up to %d bytes, its last page ends at %d (size %d): want room %d past it", name, st.Blocks*512, end, st.Size, room/2)
		}
	}
	if end, size := ends["objects.db"], fileSize(t, filepath.Join(dir, "objects.db")); end <= size {
		t.Logf("objects.db: last page ends at %d, file size %d (no page waits in the cache)", end, size)
	}
	if err := s.RoomFor(1 << 20); err != nil {
		t.Fatalf("RoomFor with room to spare: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Size
}
