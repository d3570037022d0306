package filestorage

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/durus/pickle"
	"github.com/durusbdb/durusbdb/durus/record"
)

// dfsFile builds a DFS20 file whose pre-index region holds entries (in
// order) and whose index is index.
func dfsFile(entries [][]byte, index map[uint64]int64) []byte {
	b := append([]byte("DFS20\x00"), make([]byte, 8)...)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	b = append(b, 0, 0, 0, 0)
	x := len(b)
	binary.BigEndian.PutUint64(b[6:], uint64(x))
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(pickle.EncodeIndex(index))
	zw.Close()
	b = binary.BigEndian.AppendUint64(b, uint64(z.Len()))
	return append(b, z.Bytes()...)
}

// A Durus pack may write two entries for one oid; the index names the later
// one, and only that one is current.
func TestDFS20PackDuplicates(t *testing.T) {
	v1, v2, r2 := record.Build(0, []byte("old"), 2), record.Build(0, []byte("new"), 2), record.Build(2, []byte("C"))
	off := func(i int) int64 { // offset of entry i
		o := int64(14)
		for _, e := range [][]byte{v1, r2, v2}[:i] {
			o += 4 + int64(len(e))
		}
		return o
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	good := write("good", dfsFile([][]byte{v1, r2, v2}, map[uint64]int64{0: off(2), 2: off(1)}))
	got, _, n, err := readAll(t, good, ReadOptions{})
	if err != nil || n != 2 || !bytes.Equal(got[0], v2) || !bytes.Equal(got[2], r2) {
		t.Fatalf("duplicates: %v, %d yields, %v", err, n, got)
	}
	for name, idx := range map[string]map[uint64]int64{
		"names the earlier": {0: off(0), 2: off(1)},
		"not in index":      {0: off(2)},
		"inside an entry":   {0: off(2), 2: off(1) + 4},
		"wrong oid":         {0: off(1), 2: off(1)},
	} {
		_, _, _, err := readAll(t, write(name, dfsFile([][]byte{v1, r2, v2}, idx)), ReadOptions{})
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}
