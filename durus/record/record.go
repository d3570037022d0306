// Package record parses Durus object records (PROTOCOL.md §1.3): oid, int4
// length of data, data, then the refs oid list. The engine, the server and
// the FileStorage reader all validate records here, so the rules R1–R4 live
// in one place.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// RootOID is the oid of the root object.
const RootOID uint64 = 0

// HeaderSize is the oid plus the int4 data length.
const HeaderSize = 12

// ErrMalformed marks a record that fails R1–R4; test with errors.Is.
var ErrMalformed = errors.New("malformed record")

// Error describes why a record is malformed, naming the oid.
type Error struct {
	OID    uint64
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("record oid %d: %s", e.OID, e.Reason) }

// Unwrap makes errors.Is(err, ErrMalformed) true.
func (e *Error) Unwrap() error { return ErrMalformed }

// Record is a parsed view of a record's bytes; its slices alias the input.
type Record struct {
	OID  uint64
	Data []byte
	Refs []byte // raw oid list, a multiple of 8 bytes
}

// OIDBytes encodes oid as 8 big-endian bytes.
func OIDBytes(oid uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], oid)
	return b[:]
}

// AppendOID appends the 8-byte encoding of oid to b.
func AppendOID(b []byte, oid uint64) []byte { return binary.BigEndian.AppendUint64(b, oid) }

// OID decodes 8 big-endian bytes.
func OID(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// Parse checks R1–R3 and splits rec. It does not copy.
func Parse(rec []byte) (Record, error) {
	if len(rec) < 8 {
		return Record{}, &Error{Reason: fmt.Sprintf("record of %d bytes is shorter than its 12-byte header", len(rec))}
	}
	oid := OID(rec)
	if len(rec) < HeaderSize {
		return Record{}, &Error{OID: oid, Reason: fmt.Sprintf("record of %d bytes is shorter than its 12-byte header", len(rec))}
	}
	n := uint64(binary.BigEndian.Uint32(rec[8:12]))
	if HeaderSize+n > uint64(len(rec)) {
		return Record{}, &Error{OID: oid, Reason: fmt.Sprintf("data length %d runs past the record's %d bytes", n, len(rec))}
	}
	refs := rec[HeaderSize+n:]
	if len(refs)%8 != 0 {
		return Record{}, &Error{OID: oid, Reason: fmt.Sprintf("refs length %d is not a multiple of 8", len(refs))}
	}
	return Record{OID: oid, Data: rec[HeaderSize : HeaderSize+n], Refs: refs}, nil
}

// ParseFor checks R1–R4: Parse, plus the record's own oid equals oid.
func ParseFor(oid uint64, rec []byte) (Record, error) {
	r, err := Parse(rec)
	if err != nil {
		return r, err
	}
	if r.OID != oid {
		return r, &Error{OID: oid, Reason: fmt.Sprintf("record names oid %d, stored under oid %d", r.OID, oid)}
	}
	return r, nil
}

// RefSet returns the distinct oids of r.Refs without r's own oid, sorted
// ascending (PROTOCOL.md §2.1: refs is a set without the record's own oid).
func (r Record) RefSet() []uint64 {
	out := make([]uint64, 0, len(r.Refs)/8)
	for i := 0; i+8 <= len(r.Refs); i += 8 {
		if o := OID(r.Refs[i:]); o != r.OID {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Build assembles a record from its parts (for tests and tools).
func Build(oid uint64, data []byte, refs ...uint64) []byte {
	b := make([]byte, 0, HeaderSize+len(data)+8*len(refs))
	b = AppendOID(b, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	for _, r := range refs {
		b = AppendOID(b, r)
	}
	return b
}

// ClassName returns "module.name" when data starts with a protocol-2 GLOBAL
// (80 02 63), else "?". It never fails (PROTOCOL.md §1.4, C60).
func ClassName(data []byte) string {
	if len(data) < 3 || data[0] != 0x80 || data[1] != 0x02 || data[2] != 0x63 {
		return "?"
	}
	rest := data[3:]
	i := indexByte(rest, '\n')
	if i < 0 {
		return "?"
	}
	j := indexByte(rest[i+1:], '\n')
	if j < 0 {
		return "?"
	}
	return string(rest[:i]) + "." + string(rest[i+1:i+1+j])
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
