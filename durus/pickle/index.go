package pickle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// IndexBatch is the number of items per SETITEMS batch the encoder writes,
// as Python's pickler does (PROTOCOL.md §11.3).
const IndexBatch = 1000

// DecodeIndex decodes the (already decompressed) pickle of a DFS20 index
// (PROTOCOL.md §11.3, §11.4): a dict mapping oids to file offsets, written
// by Python 2 (protocol 0, STRING keys with escapes), Python 3 (protocols
// 3–5, bytes keys) or durusbdb (protocol 2, _codecs.encode keys). Keys must
// be 8-byte strings (text keys are taken as latin-1, as Durus does); values
// must be integers fitting 64 bits. Later duplicates of a key win. The
// result's offsets are not range checked; that is the file reader's job.
// Errors match ErrMalformed.
func DecodeIndex(pickle []byte) (map[uint64]int64, error) {
	m := machine{stream: "index", in: pickle, memo: make(map[uint64]value), index: true}
	v, err := m.run()
	if err != nil {
		return nil, err
	}
	if v.k != kDict {
		return nil, &MalformedError{Stream: "index", Offset: int64(m.op), Reason: "the index pickle is not a dict"}
	}
	return v.d.m, nil
}

// EncodeIndex returns the protocol-2 pickle of index (uncompressed), keys
// in ascending oid order, as IndexEncoder writes it.
func EncodeIndex(index map[uint64]int64) []byte {
	var buf sliceWriter
	e := NewIndexEncoder(&buf)
	for _, oid := range slices.Sorted(maps.Keys(index)) {
		_ = e.Add(oid, index[oid]) // cannot fail: ascending keys, memory writer
	}
	_ = e.Close()
	return buf
}

type sliceWriter []byte

func (w *sliceWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

// ErrIndexOrder is returned by IndexEncoder.Add for an oid not above the
// previous one.
var ErrIndexOrder = errors.New("pickle: index oids must be added in ascending order")

// IndexEncoder streams the protocol-2 DFS20 index pickle of PROTOCOL.md
// §11.3 to a writer (the caller compresses it): PROTO 2, EMPTY_DICT, then for
// every batch of at most IndexBatch items MARK · items · SETITEMS, then STOP.
// Each key is `_codecs.encode(<8 code points>, "latin1")`, each offset a
// BININT, or a LONG1 from 2^31 on. Memory use is constant. An IndexEncoder is
// used by one goroutine.
type IndexEncoder struct {
	w     *bufio.Writer
	n     int // items in the current batch
	last  uint64
	count int
	err   error
}

// NewIndexEncoder writes the pickle header to w and returns the encoder.
func NewIndexEncoder(w io.Writer) *IndexEncoder {
	e := &IndexEncoder{w: bufio.NewWriterSize(w, 64<<10)}
	e.w.Write([]byte{0x80, 0x02, '}'})
	return e
}

// Add appends one item; oids must be strictly ascending.
func (e *IndexEncoder) Add(oid uint64, offset int64) error {
	if e.err != nil {
		return e.err
	}
	if e.count > 0 && oid <= e.last {
		return fmt.Errorf("%w: oid %d after %d", ErrIndexOrder, oid, e.last)
	}
	e.last = oid
	e.count++
	if e.n == 0 {
		e.w.WriteByte('(')
	}
	var b [64]byte
	out := append(b[:0], "c_codecs\nencode\nX"...)
	var oidb [8]byte
	binary.BigEndian.PutUint64(oidb[:], oid)
	n := 0
	for _, c := range oidb {
		n++
		if c >= 0x80 {
			n++
		}
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(n))
	for _, c := range oidb {
		if c < 0x80 {
			out = append(out, c)
		} else {
			out = append(out, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	out = append(out, 'X', 6, 0, 0, 0)
	out = append(out, "latin1"...)
	out = append(out, 0x86, 'R')
	out = appendInt(out, offset)
	if _, err := e.w.Write(out); err != nil {
		e.err = err
		return err
	}
	e.n++
	if e.n == IndexBatch {
		e.w.WriteByte('u')
		e.n = 0
	}
	return nil
}

// appendInt writes n as BININT when it fits a signed int4 and is not
// negative, else as LONG1 (Python's encode_long: minimal little-endian two's
// complement).
func appendInt(b []byte, n int64) []byte {
	if n >= 0 && n < 1<<31 {
		b = append(b, 'J')
		return binary.LittleEndian.AppendUint32(b, uint32(n))
	}
	var le [8]byte
	binary.LittleEndian.PutUint64(le[:], uint64(n))
	m := 8
	for m > 1 {
		last, prev := le[m-1], le[m-2]
		if (last == 0 && prev&0x80 == 0) || (last == 0xFF && prev&0x80 != 0) {
			m--
			continue
		}
		break
	}
	b = append(b, 0x8A, byte(m))
	return append(b, le[:m]...)
}

// Close ends the last batch, writes STOP and flushes. It does not close the
// underlying writer.
func (e *IndexEncoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if e.n > 0 {
		e.w.WriteByte('u')
		e.n = 0
	}
	e.w.WriteByte('.')
	e.err = e.w.Flush()
	if e.err == nil {
		e.err = errors.New("pickle: index encoder closed")
		return nil
	}
	return e.err
}

// Count is the number of items added so far.
func (e *IndexEncoder) Count() int { return e.count }
