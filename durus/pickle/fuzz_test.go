package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"slices"
	"testing"
)

func seedRecords(f *testing.F, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	for len(b) >= 4 {
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			break
		}
		f.Add(b[4 : 4+n])
		b = b[4+n:]
	}
}

// FuzzScanRefs: any input gives refs or a malformed error, never a panic
// or a hang (C58); CheckRefs agrees with ScanRefs.
func FuzzScanRefs(f *testing.F) {
	seedRecords(f, "testdata/records_py2.bin")
	f.Add(build(5, []byte("ok")))
	f.Add(build(0, []byte("\x80\x02cmod\nK\nq\x00.\x80\x02(U\x08\x00\x00\x00\x00\x00\x00\x00\x01cmod\nK\nq\x01\x86Qh\x01h\x00\x86Q\x85q\x02."), 1))
	// The bombs of issue 15 (refused by the scan limits).
	f.Add(build(5, append(slices.Clone(bombClass), bytes.Repeat([]byte{'('}, 300_000)...)))
	f.Add(build(5, append(slices.Clone(bombClass), zlibOf(f, noneState(8<<20))...)))
	f.Add(build(5, append(slices.Clone(bombClass), zlibOf(f, noneState(16<<20))...)))
	f.Add(build(5, append(slices.Clone(bombClass), memoBomb(300_000)...)))
	f.Fuzz(func(t *testing.T, rec []byte) {
		p, err := ScanRefs(rec, 1<<20)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		err = CheckRefs(rec)
		if err != nil && !errors.Is(err, ErrRefMismatch) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("CheckRefs: %v", err)
		}
		oid := binary.BigEndian.Uint64(rec)
		if (err == nil) != equalSets(oidSet(p, oid), oidSet(refsOf(rec), oid)) {
			t.Fatalf("CheckRefs %v disagrees with P %v", err, p)
		}
	})
}

func equalSets(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzDecodeIndex: any input decodes or fails with ErrMalformed; a decoded
// index survives EncodeIndex/DecodeIndex unchanged.
func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte("\x80\x02}."))
	f.Add([]byte("(dp1\nS'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'\np2\nI14\nsS\"\\x00\\x00\\x00\\x00\\x00\\x00\\x00'\"\np3\nL99L\ns."))
	f.Add([]byte("\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00}\x94(C\x08\x00\x00\x00\x00\x00\x00\x00\x00\x94K\x0eC\x08\x00\x00\x00\x00\x00\x00\x00\x01\x94M\x00\x01u."))
	f.Add(EncodeIndex(map[uint64]int64{0: 14, 255: 1 << 31, 1 << 63: 1 << 40}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeIndex(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		m2, err := DecodeIndex(EncodeIndex(m))
		if err != nil || !maps.Equal(m, m2) {
			t.Fatalf("round trip: %v %v %v", m, m2, err)
		}
	})
}
