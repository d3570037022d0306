package pickle

import (
	"bytes"
	"compress/zlib"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// bombClass is a valid class pickle; a bomb's state follows it.
var bombClass = []byte("\x80\x02cmod\nK\nq\x00.")

// zlibOf compresses b at the best level.
func zlibOf(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	zw.Write(b)
	zw.Close()
	return z.Bytes()
}

// noneState is a protocol-2 state of n NONE opcodes and a STOP.
func noneState(n int) []byte {
	s := make([]byte, 0, n+3)
	s = append(s, 0x80, 0x02)
	s = append(s, bytes.Repeat([]byte{'N'}, n)...)
	return append(s, '.')
}

// bombs are the reference-scanner bombs of issue 15 item 3, with the limit
// each must be refused by under the default Limits.
func bombs(tb testing.TB) []struct {
	name, limit string
	rec         []byte
} {
	tuples := []byte{0x80, 0x02}
	// Tuples of 200k items each: the stack stays short, the values do not.
	for range 8 {
		tuples = append(tuples, '(')
		tuples = append(tuples, bytes.Repeat([]byte{'N'}, 200_000)...)
		tuples = append(tuples, 't')
	}
	return []struct {
		name, limit string
		rec         []byte
	}{
		{"1MB of MARK", "stack", build(5, append(slices.Clone(bombClass), bytes.Repeat([]byte{'('}, 1<<20)...))},
		{"8KB zlib of 8M NONE", "ratio", build(5, append(slices.Clone(bombClass), zlibOf(tb, noneState(8<<20))...))},
		{"16KB zlib of 16M NONE", "ratio", build(5, append(slices.Clone(bombClass), zlibOf(tb, noneState(16<<20))...))},
		{"2M NONE uncompressed", "stack", build(5, append(slices.Clone(bombClass), noneState(2<<20)...))},
		{"8 tuples of 200k", "items", build(5, append(slices.Clone(bombClass), tuples...))},
		{"memo of 300k PUTs", "memo", build(5, append(slices.Clone(bombClass), memoBomb(300_000)...))},
	}
}

// memoBomb is a state that memoizes one value n times under distinct keys.
func memoBomb(n int) []byte {
	s := []byte{0x80, 0x04, 'N'}
	for range n {
		s = append(s, 0x94) // MEMOIZE
	}
	return append(s, '.')
}

// TestScanBombsRefused: each bomb is refused with a *LimitError naming the
// limit, matching ErrLimit (and ErrMalformed: the protocol calls a record
// over the scan limit malformed), and CheckRefs refuses it the same way.
func TestScanBombsRefused(t *testing.T) {
	for _, b := range bombs(t) {
		_, err := Limits{}.ScanRefs(b.rec)
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrLimit) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want a *LimitError", b.name, err)
			continue
		}
		if le.Limit != b.limit || !strings.Contains(err.Error(), b.limit+" limit") || !le.HasOID || le.OID != 5 {
			t.Errorf("%s: refused by %q (%v), want the %s limit", b.name, le.Limit, err, b.limit)
		}
		if err := (Limits{}).CheckRefs(b.rec); !errors.Is(err, ErrLimit) {
			t.Errorf("%s: CheckRefs = %v", b.name, err)
		}
		if err := CheckRefs(b.rec); !errors.Is(err, ErrLimit) {
			t.Errorf("%s: package CheckRefs = %v", b.name, err)
		}
		t.Logf("%s (%d bytes): %v", b.name, len(b.rec), err)
	}
}

// TestScanBombsBounded: no bomb makes the scanner allocate more than 256 MB
// in all (TotalAlloc counts garbage too, so this bounds the RSS growth) or
// run more opcodes than its input has bytes plus the limits allow.
func TestScanBombsBounded(t *testing.T) {
	for _, b := range bombs(t) {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		_, err := Limits{}.ScanRefs(b.rec)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, ErrLimit) {
			t.Errorf("%s: not refused: %v", b.name, err)
		}
		alloc := m1.TotalAlloc - m0.TotalAlloc
		t.Logf("%s: allocated %d MB", b.name, alloc>>20)
		if alloc > 256<<20 {
			t.Errorf("%s: allocated %d MB, want ≤ 256 MB", b.name, alloc>>20)
		}
	}
}

// TestScanOpsLimit: the work limit counts opcodes and refuses a record
// running more of them.
func TestScanOpsLimit(t *testing.T) {
	rec := build(5, append(slices.Clone(bombClass), noneState(1000)...))
	if _, err := (Limits{Ops: 100}).ScanRefs(rec); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "ops limit") {
		t.Fatalf("ops limit 100: %v", err)
	}
	if _, err := (Limits{Ops: 100, Stack: 10}).ScanRefs(rec); !strings.Contains(fmtErr(err), "stack limit") {
		t.Fatalf("stack limit 10: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestScanLimitsLegit: records within the defaults scan as before, and a
// compressed state of up to 1 MiB is accepted whatever its ratio.
func TestScanLimitsLegit(t *testing.T) {
	state := []byte("\x80\x02U\x08\x00\x00\x00\x00\x00\x00\x00\x01cmod\nK\nq\x01\x86Q")
	state = append(state, "\x85q\x02."...)
	rec := build(0, append(slices.Clone(bombClass), zlibOf(t, state)...), 1)
	if err := (Limits{}).CheckRefs(rec); err != nil {
		t.Fatal(err)
	}
	// 200k NONE in a tuple: ratio ~1000, but under the 1 MiB floor.
	big := []byte{0x80, 0x02, '('}
	big = append(big, bytes.Repeat([]byte{'N'}, 200_000)...)
	big = append(big, 't', '.')
	rec = build(0, append(slices.Clone(bombClass), zlibOf(t, big)...))
	if _, err := (Limits{}).ScanRefs(rec); err != nil {
		t.Fatalf("200k NONE compressed: %v", err)
	}
}
