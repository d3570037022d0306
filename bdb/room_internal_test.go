//go:build bdb

package bdb

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestRoomPastLastPage: every database file of a writable environment
// has blocks allocated past the last page libdb's cache has created, pages
// not yet written out included, by at least half of its room (roomFor),
// so that writing those pages and the next ones never needs a block the
// file system may no longer have (a torn page on a full disk).
func TestRoomPastLastPage(t *testing.T) {
	// 6 MB of new pages in the 8 MiB cache, none written out yet.
	s := storeWithPuts(t, 30, func(int) []byte { return make([]byte, 200<<10) })
	ends := s.env.logicalEnds()
	if len(ends) == 0 {
		t.Fatal("no database file's end known")
	}
	s.env.room.topUp()
	for name, end := range ends {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(s.dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if room := roomFor(st.Size); st.Blocks*512 < end+room/2 {
			t.Errorf("%s: blocks up to %d bytes, its last page ends at %d (size %d): want room %d past it", name, st.Blocks*512, end, st.Size, room/2)
		}
	}
	if end, size := ends["objects.db"], fileSize(t, filepath.Join(s.dir, "objects.db")); end <= size {
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
