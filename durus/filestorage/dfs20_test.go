package filestorage

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
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

// Records stops on cancellation; Stats is safe from another goroutine.
func TestRecordsCancelAndStats(t *testing.T) {
	recs := map[uint64][]byte{}
	for i := uint64(0); i < 2000; i++ {
		recs[i] = record.Build(i, make([]byte, 100))
	}
	for _, write := range []func(string, WriteOptions, func(func(uint64, []byte) error) error) (WriteStats, error){WriteShelf, WriteDFS20} {
		p := filepath.Join(t.TempDir(), "f")
		if _, err := write(p, WriteOptions{}, scanOf(recs)); err != nil {
			t.Fatal(err)
		}
		r, err := Open(p, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for r.Stats().Records < 10 {
				runtime.Gosched()
			}
		}()
		n := 0
		err = r.Records(ctx, func(rec []byte) error {
			n++
			if n == 100 {
				<-done
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || n != 100 {
			t.Fatalf("cancel: %v after %d", err, n)
		}
		if st := r.Stats(); st.Records != 100 || st.Done || st.Offset <= 14 {
			t.Fatalf("stats %+v", st)
		}
		// A full rescan works and ends at the file size.
		n = 0
		if err := r.Records(context.Background(), func([]byte) error { n++; return nil }); err != nil || n != len(recs) {
			t.Fatalf("rescan: %v %d", err, n)
		}
		if st := r.Stats(); !st.Done || st.Offset != st.Size || st.Records != int64(len(recs)) {
			t.Fatalf("stats %+v", st)
		}
		r.Close()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Records(ctx, func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
	}
}
