package leveldb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// newTestWAL creates a redo log of size bytes in a new directory and starts
// its first epoch at seq 1.
func newTestWAL(t *testing.T, size int64) *walFile {
	t.Helper()
	w, err := createWAL(filepath.Join(t.TempDir(), walName), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close() })
	if err := w.reset(walHeader{}, 1); err != nil {
		t.Fatal(err)
	}
	return w
}

// appendN appends n records of payload size plen after w.last.
func appendN(t *testing.T, w *walFile, n, plen int) error {
	t.Helper()
	var recs []byte
	var ends []int
	for i := 1; i <= n; i++ {
		seq := w.last + uint64(i)
		p := bytes.Repeat([]byte{byte(seq)}, plen)
		recs = appendWALRecord(recs, w.hdr.epoch, seq, p)
		ends = append(ends, len(recs))
	}
	return w.append(recs, ends, w.last+uint64(n))
}

// seqsOf reads the redo log back and returns the seqs a replay would see,
// checking each payload.
func seqsOf(t *testing.T, w *walFile, plen int) []uint64 {
	t.Helper()
	st, err := readWAL(w.path)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range st.records {
		if !bytes.Equal(r.payload, bytes.Repeat([]byte{byte(r.seq)}, plen)) {
			t.Fatalf("record %d: payload damaged", r.seq)
		}
		seqs = append(seqs, r.seq)
	}
	return seqs
}

func wantSeqs(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	var want []uint64
	for s := from; s <= to; s++ {
		want = append(want, s)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %v, want %d..%d", got, from, to)
	}
}

// TestWALWrapsAroundTheRing: records go around the ring many times, the
// start moving behind them as checkpoints would move it; the reader
// always finds exactly the records from the start on, across the wrap.
func TestWALWrapsAroundTheRing(t *testing.T) {
	const plen = 1000
	w := newTestWAL(t, walDataStart+10*(walRecHdrLen+plen)+500) // 10 records and a bit
	for round := 0; round < 25; round++ {
		start := w.last + 1
		if err := appendN(t, w, 3, plen); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := appendN(t, w, 4, plen); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		wantSeqs(t, seqsOf(t, w, plen), start, w.last)
		// As a background checkpoint: LevelDB synced up to the last record.
		if err := w.startAt(w.last+1, w.head, w.lap); err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(t, w, plen); len(got) != 0 {
			t.Fatalf("round %d: records %v after the start moved to the head", round, got)
		}
	}
	if w.lap < 10 {
		t.Fatalf("the ring wrapped %d times in 25 rounds of 7 records, want ≥ 10", w.lap)
	}
}

// TestWALFull: the ring refuses records that would overwrite records not
// yet checkpointed, and takes them once the start moved.
func TestWALFull(t *testing.T) {
	const plen = 1000
	w := newTestWAL(t, walDataStart+10*(walRecHdrLen+plen)+500)
	if err := appendN(t, w, 8, plen); err != nil {
		t.Fatal(err)
	}
	mid, midLap, midSeq := w.head, w.lap, w.last+1
	if err := appendN(t, w, 2, plen); err != nil {
		t.Fatal(err)
	}
	if err := appendN(t, w, 1, plen); !errors.Is(err, errWALFull) {
		t.Fatalf("11th record in a ring of 10: %v, want errWALFull", err)
	}
	wantSeqs(t, seqsOf(t, w, plen), 1, 10)
	if err := w.startAt(midSeq, mid, midLap); err != nil { // records 1..8 checkpointed
		t.Fatal(err)
	}
	if err := appendN(t, w, 7, plen); err != nil {
		t.Fatalf("7 records after 8 were freed: %v", err)
	}
	if err := appendN(t, w, 1, plen); !errors.Is(err, errWALFull) {
		t.Fatalf("record reaching the start: %v, want errWALFull", err)
	}
	wantSeqs(t, seqsOf(t, w, plen), 9, 17)
}

// TestWALReaderStops: the reader ends at a damaged record (a torn write),
// and never takes records of an earlier epoch lying after the last one
// written (bytes of an earlier open's ring).
func TestWALReaderStops(t *testing.T) {
	const plen = 200
	w := newTestWAL(t, 1<<16)
	if err := appendN(t, w, 6, plen); err != nil {
		t.Fatal(err)
	}
	// Damage record 4's payload: the reader stops after 3.
	off := int64(walDataStart + 3*(walRecHdrLen+plen) + walRecHdrLen + 10)
	if _, err := w.f.WriteAt([]byte{0xff}, off); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, seqsOf(t, w, plen), 1, 3)

	// Recovery found 1..3; a new epoch starts at seq 4 at the ring's start,
	// with one record as long as the old 1..3, so that the next offset is
	// the old record 4's (damaged) — and, one record on, a record of seq 5
	// lies where seq 5 is expected. Only its epoch tells it apart.
	st, _ := readWAL(w.path)
	if err := w.reset(st.hdr, 4); err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte{4}, 3*(walRecHdrLen+plen)-walRecHdrLen)
	rec := appendWALRecord(nil, w.hdr.epoch, 4, long)
	if err := w.append(rec, []int{len(rec)}, 4); err != nil {
		t.Fatal(err)
	}
	// Repair old record 4 in place (as if the tear had been elsewhere):
	// it now carries a valid CRC, seq 4 of the old epoch.
	old := appendWALRecord(nil, st.hdr.epoch, 5, bytes.Repeat([]byte{5}, plen))
	if _, err := w.f.WriteAt(old, w.head); err != nil {
		t.Fatal(err)
	}
	st, err := readWAL(w.path)
	if err != nil || len(st.records) != 1 || st.records[0].seq != 4 {
		t.Fatalf("after the new epoch's first record: %d records (%v), want only seq 4", len(st.records), err)
	}
}

// TestWALHeaderSlots: a damaged newest header leaves the other one, whose
// start still points at records not overwritten.
func TestWALHeaderSlots(t *testing.T) {
	const plen = 100
	w := newTestWAL(t, 1<<16)
	if err := appendN(t, w, 5, plen); err != nil {
		t.Fatal(err)
	}
	if err := w.startAt(4, walDataStart+3*(walRecHdrLen+plen), 0); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, seqsOf(t, w, plen), 4, 5)
	// Tear the newest header: the older one (start 1) is used.
	if _, err := w.f.WriteAt([]byte("XX"), int64(w.hdr.gen%2)*walSlotSize+20); err != nil {
		t.Fatal(err)
	}
	wantSeqs(t, seqsOf(t, w, plen), 1, 5)
	// Both torn with records present: an error naming the file.
	if _, err := w.f.WriteAt([]byte("XX"), int64((w.hdr.gen+1)%2)*walSlotSize+20); err != nil {
		t.Fatal(err)
	}
	if _, err := readWAL(w.path); !errors.Is(err, errWALCorrupt) {
		t.Fatalf("both headers damaged: %v, want errWALCorrupt", err)
	}
}

// TestWALCreationInterrupted: a redo log that never got its header (a
// crash during creation) holds nothing and is made again.
func TestWALCreationInterrupted(t *testing.T) {
	path := filepath.Join(t.TempDir(), walName)
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := readWAL(path)
	if err != nil || !st.fresh {
		t.Fatalf("zeros only: %+v, %v; want a fresh state", st, err)
	}
}

// TestWALOps: a payload decodes to the operations encoded, and a cut one
// is an error, not a panic.
func TestWALOps(t *testing.T) {
	var p []byte
	p = appendWALOp(p, false, []byte("ka"), []byte("va"))
	p = appendWALOp(p, true, []byte("kb"), nil)
	p = appendWALOp(p, false, []byte(""), []byte(""))
	ops, err := decodeWALOps(p)
	if err != nil || len(ops) != 3 || string(ops[0].key) != "ka" || string(ops[0].val) != "va" || !ops[1].del || string(ops[1].key) != "kb" || ops[2].del {
		t.Fatalf("decoded %+v, %v", ops, err)
	}
	for n := 1; n < len(p); n++ {
		if ops, err := decodeWALOps(p[:n]); err == nil && len(ops) == 3 {
			t.Fatalf("payload cut at %d decoded whole", n)
		}
	}
}

// FuzzWALOps: no payload makes the decoder panic or read out of bounds,
// and what it decodes encodes back to the same operations.
func FuzzWALOps(f *testing.F) {
	f.Add(appendWALOp(appendWALOp(nil, false, []byte("k"), []byte("v")), true, []byte("d"), nil))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, p []byte) {
		ops, err := decodeWALOps(p)
		if err != nil {
			return
		}
		var again []byte
		for _, op := range ops {
			again = appendWALOp(again, op.del, op.key, op.val)
		}
		ops2, err := decodeWALOps(again)
		if err != nil || fmt.Sprint(ops2) != fmt.Sprint(ops) {
			t.Fatalf("re-encoded operations decode to %v, %v; want %v", ops2, err, ops)
		}
	})
}

// FuzzReadWAL: no file contents make the reader panic, allocate beyond the
// file's size, or return records that do not follow one another.
func FuzzReadWAL(f *testing.F) {
	dir := f.TempDir()
	w, err := createWAL(filepath.Join(dir, walName), walDataStart+4096)
	if err != nil {
		f.Fatal(err)
	}
	if err := w.reset(walHeader{}, 7); err != nil {
		f.Fatal(err)
	}
	rec := appendWALRecord(nil, w.hdr.epoch, 7, appendWALOp(nil, false, []byte("k"), []byte("v")))
	first := len(rec)
	rec = appendWALRecord(rec, w.hdr.epoch, 8, appendWALOp(nil, true, []byte("k"), nil))
	if err := w.append(rec, []int{first, len(rec)}, 8); err != nil {
		f.Fatal(err)
	}
	if st, err := readWAL(w.path); err != nil || len(st.records) != 2 {
		f.Fatalf("seed holds %d records (%v), want 2", len(st.records), err)
	}
	w.close()
	seed, err := os.ReadFile(w.path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:walDataStart+10])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), walName)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := readWAL(path)
		if err != nil {
			return
		}
		for i, r := range st.records {
			if r.seq != st.hdr.startSeq+uint64(i) {
				t.Fatalf("record %d has seq %d, start %d", i, r.seq, st.hdr.startSeq)
			}
		}
	})
}
