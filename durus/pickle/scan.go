// Package pickle holds the two pieces of Python pickle handling durusbdb
// needs, without a Python unpickler:
//
//   - the reference scanner of PROTOCOL.md §2.3 (ScanRefs, CheckRefs), which
//     recovers the persistent references pickled inside a Durus object
//     record, for Python 2 and Python 3 writers, compressed or not;
//   - the DFS20 index codec of PROTOCOL.md §11.3/§11.4 (DecodeIndex for
//     every protocol Durus has written, EncodeIndex and IndexEncoder for the
//     protocol-2 form durusbdb exports).
//
// Both run a small pickle machine that tracks only the values they need.
// Every function is safe on arbitrary input: malformed input gives an error
// matching ErrMalformed, never a panic, and no length read from the input
// allocates memory before the bytes are present (decompression is bounded by
// a limit). The package has no mutable global state; all functions are safe
// for concurrent use.
package pickle

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// DefaultLimit is the largest decompressed state ScanRefs accepts when
// called with limit ≤ 0 (PROTOCOL.md §9: 1 GiB).
const DefaultLimit = 1 << 30

// ErrMalformed marks a record or pickle the machine cannot run (PROTOCOL.md
// §2.3); test with errors.Is.
var ErrMalformed = errors.New("malformed pickle")

// ErrRefMismatch marks a record whose pickled references differ from its
// refs field (PROTOCOL.md §2.4); test with errors.Is.
var ErrRefMismatch = errors.New("pickled references differ from refs")

// MalformedError says where and why a record or pickle is malformed.
type MalformedError struct {
	// OID is the record's oid; HasOID is false when no oid was known
	// (a record shorter than 8 bytes, or an index pickle).
	OID    uint64
	HasOID bool
	// Stream is "record", "class", "state" or "index".
	Stream string
	// Offset is the byte offset of the failing opcode inside Stream (for a
	// compressed state: inside the decompressed state).
	Offset int64
	Reason string
}

// Error implements error, naming the oid, stream and offset.
func (e *MalformedError) Error() string {
	var sb strings.Builder
	sb.WriteString("pickle: ")
	if e.HasOID {
		sb.WriteString("oid ")
		sb.WriteString(strconv.FormatUint(e.OID, 10))
		sb.WriteString(": ")
	}
	fmt.Fprintf(&sb, "malformed %s at offset %d: %s", e.Stream, e.Offset, e.Reason)
	return sb.String()
}

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// MismatchError names the oids on which a record's pickled references and
// its refs field disagree (both sets without the record's own oid).
type MismatchError struct {
	OID uint64
	// Missing are pickled references absent from refs, ascending.
	Missing []uint64
	// Extra are refs entries the pickle does not reference, ascending.
	Extra []uint64
}

// Error implements error, listing the differing oids.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("pickle: oid %d: pickled references differ from refs: missing from refs %s, not pickled %s",
		e.OID, fmtOIDs(e.Missing), fmtOIDs(e.Extra))
}

// Unwrap makes errors.Is(err, ErrRefMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrRefMismatch }

func fmtOIDs(o []uint64) string {
	const show = 20
	var sb strings.Builder
	sb.WriteByte('[')
	for i, x := range o {
		if i == show {
			fmt.Fprintf(&sb, " … %d more", len(o)-show)
			break
		}
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(strconv.FormatUint(x, 10))
	}
	sb.WriteByte(']')
	return sb.String()
}

// split checks R1–R3 (PROTOCOL.md §1.3) and returns oid, data and refs.
func split(rec []byte) (oid uint64, data, refs []byte, err error) {
	if len(rec) < 8 {
		return 0, nil, nil, &MalformedError{Stream: "record", Reason: fmt.Sprintf("record of %d bytes is shorter than its 12-byte header", len(rec))}
	}
	oid = binary.BigEndian.Uint64(rec)
	bad := func(format string, args ...any) error {
		return &MalformedError{OID: oid, HasOID: true, Stream: "record", Reason: fmt.Sprintf(format, args...)}
	}
	if len(rec) < 12 {
		return oid, nil, nil, bad("record of %d bytes is shorter than its 12-byte header", len(rec))
	}
	n := uint64(binary.BigEndian.Uint32(rec[8:12]))
	if 12+n > uint64(len(rec)) {
		return oid, nil, nil, bad("data length %d runs past the record's %d bytes", n, len(rec))
	}
	refs = rec[12+n:]
	if len(refs)%8 != 0 {
		return oid, nil, nil, bad("refs length %d is not a multiple of 8", len(refs))
	}
	return oid, rec[12 : 12+n], refs, nil
}

// ScanRefs runs the scan of PROTOCOL.md §2.3 on a full object record and
// returns the pickled references P: the oids of every BINPERSID, in pickle
// order, possibly repeated and possibly including the record's own oid.
// limit bounds the decompressed state in bytes (≤ 0 means DefaultLimit).
// A record that fails R1–R3 or whose data the machine cannot run gives a
// *MalformedError (errors.Is(err, ErrMalformed)); data such as "ok" is
// malformed, which is legal for the record itself (§2.1).
//
// The other limits are Limits' defaults; a record over one of them gives a
// *LimitError (errors.Is(err, ErrLimit), and ErrMalformed).
func ScanRefs(rec []byte, limit int) ([]uint64, error) {
	return scanRefs(rec, Limits{Decompressed: limit}.withDefaults())
}

// scanRefs is ScanRefs under lim (defaults filled).
func scanRefs(rec []byte, lim Limits) ([]uint64, error) {
	oid, data, _, err := split(rec)
	if err != nil {
		return nil, err
	}
	m := machine{stream: "class", in: data, memo: make(map[uint64]value), lim: lim, limited: true}
	if _, err := m.run(); err != nil {
		return nil, withOID(err, oid)
	}
	p := m.pos
	if p == len(data) {
		return nil, withOID(&MalformedError{Stream: "class", Offset: int64(p), Reason: "no state pickle after the class pickle"}, oid)
	}
	state := data[p:]
	compressed := false
	if state[0] == 0x78 {
		if out, ok, err := inflate(state, lim); err != nil {
			return nil, withOID(err, oid)
		} else if ok {
			state, compressed = out, true
		}
	}
	m.stream, m.in, m.pos = "state", state, 0
	if _, err := m.run(); err != nil {
		return nil, withOID(err, oid)
	}
	if !compressed && m.pos != len(state) {
		return nil, withOID(&MalformedError{Stream: "state", Offset: int64(m.pos),
			Reason: fmt.Sprintf("%d bytes after the state pickle's STOP", len(state)-m.pos)}, oid)
	}
	return m.refs, nil
}

// inflate zlib-decompresses b, ignoring bytes after the zlib stream. ok is
// false when b is not a valid zlib stream (the caller falls back to the raw
// bytes, as Durus does); output larger than lim.Decompressed, or above
// RatioFloor and more than lim.Ratio times len(b), is refused with a
// *LimitError before more than the allowed bytes are buffered.
func inflate(b []byte, lim Limits) (out []byte, ok bool, err error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, false, nil
	}
	defer zr.Close()
	max, name := int64(lim.Decompressed), "decompressed"
	if r := max64(int64(lim.Ratio)*int64(len(b)), RatioFloor); r < max {
		max, name = r, "ratio"
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(zr, max+1))
	if err != nil {
		return nil, false, nil
	}
	if n > max {
		lmax := max
		if name == "ratio" {
			lmax = int64(lim.Ratio)
		}
		return nil, false, &LimitError{Stream: "state", Limit: name, Max: lmax}
	}
	return buf.Bytes(), true, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func withOID(err error, oid uint64) error {
	var me *MalformedError
	if errors.As(err, &me) {
		me.OID, me.HasOID = oid, true
	}
	var le *LimitError
	if errors.As(err, &le) {
		le.OID, le.HasOID = oid, true
	}
	return err
}

// CheckRefs scans rec (ScanRefs with DefaultLimit) and compares
// set(P) − {oid} with set(refs) − {oid} (PROTOCOL.md §2.3, §2.4). It returns
// nil when they are equal, a *MismatchError naming the differing oids
// (errors.Is(err, ErrRefMismatch)) when they differ, or the scan's
// *MalformedError.
//
// It runs under the default Limits; a record over one gives a *LimitError.
func CheckRefs(rec []byte) error {
	return checkRefs(rec, Limits{}.withDefaults())
}

// checkRefs is CheckRefs under lim (defaults filled).
func checkRefs(rec []byte, lim Limits) error {
	p, err := scanRefs(rec, lim)
	if err != nil {
		return err
	}
	oid, _, refs, _ := split(rec)
	r := make([]uint64, 0, len(refs)/8)
	for i := 0; i+8 <= len(refs); i += 8 {
		r = append(r, binary.BigEndian.Uint64(refs[i:]))
	}
	ps, rs := oidSet(p, oid), oidSet(r, oid)
	if slices.Equal(ps, rs) {
		return nil
	}
	e := &MismatchError{OID: oid}
	i, j := 0, 0
	for i < len(ps) || j < len(rs) {
		switch {
		case j == len(rs) || (i < len(ps) && ps[i] < rs[j]):
			e.Missing = append(e.Missing, ps[i])
			i++
		case i == len(ps) || rs[j] < ps[i]:
			e.Extra = append(e.Extra, rs[j])
			j++
		default:
			i++
			j++
		}
	}
	return e
}

// oidSet sorts, deduplicates and drops self.
func oidSet(o []uint64, self uint64) []uint64 {
	o = slices.Clone(o)
	slices.Sort(o)
	o = slices.Compact(o)
	if i, ok := slices.BinarySearch(o, self); ok {
		o = slices.Delete(o, i, i+1)
	}
	return o
}
