package leveldb

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestDropDamagedLogRecords: a log written in LevelDB's format (records
// of every size, some spanning blocks) reads back whole; a flipped byte
// in one record's data drops that record alone (the rest of its block
// too when others share it) and keeps the original in lost/.
func TestDropDamagedLogRecords(t *testing.T) {
	var recs [][]byte
	for i := range 40 {
		n := 100
		if i%7 == 3 {
			n = 70 << 10 // spans three blocks
		}
		recs = append(recs, bytes.Repeat([]byte(fmt.Sprintf("record-%02d|", i)), n/10))
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "000007.log")
	if err := writeLog(path, recs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyLog(path); err != nil {
		t.Fatalf("the written log does not verify: %v", err)
	}
	got, damaged := intactLogRecords(b, "000007.log")
	if len(damaged) != 0 || len(got) != len(recs) {
		t.Fatalf("read back %d records, damage %v; want %d whole", len(got), damaged, len(recs))
	}
	for i := range recs {
		if !bytes.Equal(got[i], recs[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if d, err := DropDamagedLogRecords(path, filepath.Join(dir, "lost")); err != nil || d != nil {
		t.Fatalf("a log without damage: %v %v, want it untouched", d, err)
	}
	// Damage record 24 (which spans blocks) in its middle.
	at := bytes.Index(b, []byte("record-24|")) + 40<<10
	b[at] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
	d, err := DropDamagedLogRecords(path, filepath.Join(dir, "lost"))
	if err != nil || len(d) != 1 {
		t.Fatalf("damaged log: %v %v, want one damage", d, err)
	}
	b2, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, damaged = intactLogRecords(b2, "000007.log")
	if len(damaged) != 0 {
		t.Fatalf("the rewritten log is damaged: %v", damaged)
	}
	var want [][]byte
	for i, r := range recs {
		if i != 24 {
			want = append(want, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records kept, want %d (all but record 24)", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("kept record %d differs", i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lost", "000007.log.damaged")); err != nil {
		t.Fatalf("the damaged original is not kept: %v", err)
	}
}

// FuzzIntactLogRecords: any bytes read as a log give records without a
// panic, and what is kept, written again, reads back the same and whole.
func FuzzIntactLogRecords(f *testing.F) {
	for _, recs := range [][][]byte{
		{[]byte("a")},
		{bytes.Repeat([]byte("x"), 40<<10), []byte("after")},
		{[]byte("one"), []byte("two"), bytes.Repeat([]byte("three"), 9000)},
	} {
		b := encodeLog(recs)
		f.Add(b)
		if len(b) > 20 {
			d := bytes.Clone(b)
			d[len(d)/2] ^= 0x40
			f.Add(d)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, _ := intactLogRecords(b, "fuzz.log")
		again, damaged := intactLogRecords(encodeLog(recs), "w.log")
		if len(damaged) != 0 || len(again) != len(recs) {
			t.Fatalf("rewritten: %d records, damage %v; want %d whole", len(again), damaged, len(recs))
		}
		for i := range recs {
			if !bytes.Equal(again[i], recs[i]) {
				t.Fatalf("record %d differs after the rewrite", i)
			}
		}
	})
}
