package filestorage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

// fuzzRead reads b as a file: it must give records that pass R1–R3 or an
// error, never a panic or a hang; with IgnoreIncompleteTail it may only
// succeed more often, and a successful plain read equals the tolerant one.
func fuzzRead(t *testing.T, b []byte) {
	read := func(ignore bool) (map[uint64][]byte, error) {
		r, err := newReader("fuzz", bytes.NewReader(b), int64(len(b)), ReadOptions{IgnoreIncompleteTail: ignore, MaxIndexBytes: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("open: unexpected error %v", err)
			}
			return nil, err
		}
		got := map[uint64][]byte{}
		err = r.Records(context.Background(), func(rec []byte) error {
			if _, err := record.Parse(rec); err != nil {
				t.Fatalf("yielded malformed record: %v", err)
			}
			got[record.OID(rec)] = rec
			return nil
		})
		if err != nil && !errors.Is(err, ErrDamaged) {
			t.Fatalf("records: unexpected error %v", err)
		}
		return got, err
	}
	strict, err1 := read(false)
	lax, err2 := read(true)
	if err1 == nil && (err2 != nil || !maps.EqualFunc(strict, lax, bytes.Equal)) {
		t.Fatalf("tolerant read differs from a successful strict read: %v", err2)
	}
}

func seedShelves(f *testing.F) {
	dir := f.TempDir()
	recs := map[uint64][]byte{0: record.Build(0, []byte("AB"), 2), 2: record.Build(2, []byte("C")), 5: record.Build(5, []byte("xyz"), 0, 2)}
	p := dir + "/s"
	if _, err := WriteShelf(p, WriteOptions{}, scanOf(recs)); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	f.Add(b)
	// With appended transactions: one record, an empty one, two records.
	app := func(b []byte, recs ...[]byte) []byte {
		tl := 0
		for _, r := range recs {
			tl += 16 + len(r)
		}
		b = binary.BigEndian.AppendUint64(b, uint64(tl))
		for _, r := range recs {
			b = binary.BigEndian.AppendUint64(b, uint64(8+len(r)))
			b = append(b, r[:8]...)
			b = append(b, r...)
		}
		return b
	}
	b = app(b, record.Build(1, []byte("new"), 0))
	b = app(b)
	b = app(b, record.Build(2, []byte("C2")), record.Build(7, nil, 1))
	f.Add(b)
	f.Add([]byte("SHELF-1\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"))
}

// FuzzShelf: arbitrary bytes read as a Shelf file.
func FuzzShelf(f *testing.F) {
	seedShelves(f)
	f.Fuzz(fuzzRead)
}

// FuzzDFS20: arbitrary bytes read as a DFS20 file.
func FuzzDFS20(f *testing.F) {
	dir := f.TempDir()
	recs := map[uint64][]byte{0: record.Build(0, []byte("AB"), 2), 2: record.Build(2, []byte("C")), 0x80ff: record.Build(0x80ff, []byte("xyz"), 0, 2)}
	p := dir + "/d"
	if _, err := WriteDFS20(p, WriteOptions{}, scanOf(recs)); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	f.Add(b)
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, record.Build(3, []byte("D"))...)
	b = append(b, 0, 0, 0, 0)
	f.Add(b)
	if g, err := os.ReadFile("testdata/py2.dfs20"); err == nil {
		f.Add(g)
	}
	f.Fuzz(fuzzRead)
}
