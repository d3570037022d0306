// Package stream writes and reads compressed byte streams for backups and
// exports (FORMAT.md §8): the snappy framing format, as produced by
// github.com/golang/snappy's Writer, plus an end marker.
//
// The framing format alone cannot tell a complete stream from one cut at a
// chunk boundary: both end cleanly. So Writer.Close appends one skippable
// chunk (type 0xfd, which every framing-format reader must skip) holding
// the magic "durusbdb-end" and the number of uncompressed bytes written,
// and Reader requires it: a stream without it ends in io.ErrUnexpectedEOF,
// a wrong count or anything after it is ErrCorrupt. Any snappy framing
// reader (python-snappy, snzip) still reads our streams. NewRawReader reads
// streams from other writers, which have no marker.
//
// Reader never panics on bad input; it returns errors wrapping ErrCorrupt
// (bad checksum, bad chunk, unsupported chunk type) or io.ErrUnexpectedEOF.
package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/golang/snappy"
)

// ErrCorrupt marks a stream that is not a valid snappy framed stream or
// whose end marker does not match its contents.
var ErrCorrupt = errors.New("stream: corrupt compressed stream")

const (
	endChunkType = 0xfd
	endMagic     = "durusbdb-end"
	endLen       = len(endMagic) + 8 // magic ‖ uint64 LE uncompressed length
	// streamIdentifier is the framing format's mandatory first chunk.
	streamIdentifier = "\xff\x06\x00\x00sNaPpY"
)

// Writer compresses to an io.Writer. Close it to write the end marker; it
// does not close the underlying writer. Not safe for concurrent use.
type Writer struct {
	w      io.Writer
	zw     *snappy.Writer
	n      uint64 // uncompressed bytes written
	closed bool
	err    error
}

// NewWriter returns a Writer compressing to w (buffered: up to 64 KiB per
// chunk, as snappy.NewBufferedWriter).
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, zw: snappy.NewBufferedWriter(w)}
}

// Write compresses p.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("stream: write after Close")
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.zw.Write(p)
	w.n += uint64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Flush writes buffered data to the underlying writer as complete chunks.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.zw.Flush(); err != nil {
		w.err = err
	}
	return w.err
}

// Written returns the number of uncompressed bytes written so far.
func (w *Writer) Written() uint64 { return w.n }

// Close flushes and writes the end marker. Later calls return nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.Flush(); err != nil {
		return err
	}
	var buf bytes.Buffer
	if w.n == 0 {
		buf.WriteString(streamIdentifier) // snappy writes it with the first data only
	}
	buf.Write([]byte{endChunkType, byte(endLen), byte(endLen >> 8), byte(endLen >> 16)})
	buf.WriteString(endMagic)
	binary.Write(&buf, binary.LittleEndian, w.n)
	if _, err := w.w.Write(buf.Bytes()); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Reader decompresses a stream written by Writer. Not safe for concurrent
// use.
type Reader struct {
	zr      *snappy.Reader
	scan    *chunkScanner
	n       uint64 // uncompressed bytes returned
	err     error
	needEnd bool
}

// NewReader returns a Reader that requires the end marker (see the package
// documentation).
func NewReader(r io.Reader) *Reader {
	sc := &chunkScanner{r: r}
	return &Reader{zr: snappy.NewReader(sc), scan: sc, needEnd: true}
}

// NewRawReader returns a Reader for any snappy framed stream; it checks the
// end marker only if there is one, so it cannot detect truncation.
func NewRawReader(r io.Reader) *Reader {
	rd := NewReader(r)
	rd.needEnd = false
	return rd
}

// Read decompresses into p.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.zr.Read(p)
	r.n += uint64(n)
	switch {
	case err == nil:
	case err == io.EOF:
		err = r.atEOF()
	case errors.Is(err, snappy.ErrCorrupt), errors.Is(err, snappy.ErrUnsupported):
		err = fmt.Errorf("%w after %d bytes: %w", ErrCorrupt, r.n, err)
	case r.scan.err != nil:
		err = r.scan.err
	}
	if err == nil && r.scan.err != nil {
		err = r.scan.err
	}
	r.err = err
	return n, err
}

// atEOF checks the end marker when the input ended cleanly.
func (r *Reader) atEOF() error {
	if r.scan.err != nil {
		return r.scan.err
	}
	if !r.scan.sawEnd {
		if r.needEnd {
			return fmt.Errorf("stream: no end marker after %d bytes (stream truncated): %w", r.n, io.ErrUnexpectedEOF)
		}
		return io.EOF
	}
	if r.scan.endCount != r.n {
		return fmt.Errorf("%w: end marker says %d bytes, stream held %d", ErrCorrupt, r.scan.endCount, r.n)
	}
	return io.EOF
}

// chunkScanner passes the compressed bytes through to snappy.Reader while
// following the chunk structure, to find the end marker (which
// snappy.Reader skips silently) and to refuse anything after it.
type chunkScanner struct {
	r        io.Reader
	hdr      [4]byte
	hdrN     int    // header bytes seen of the current chunk
	remain   int    // payload bytes still to come in the current chunk
	chunkLen int    // payload length of the current chunk
	typ      byte   // type of the current chunk
	payload  []byte // of an end-marker candidate
	sawEnd   bool
	endCount uint64
	err      error
}

// Read reads from the underlying reader and scans what it returns.
func (s *chunkScanner) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.feed(p[:n])
	if s.err != nil {
		return n, s.err
	}
	return n, err
}

func (s *chunkScanner) feed(b []byte) {
	for len(b) > 0 && s.err == nil {
		if s.hdrN < 4 {
			if s.sawEnd {
				s.err = fmt.Errorf("%w: data after the end marker", ErrCorrupt)
				return
			}
			c := copy(s.hdr[s.hdrN:], b)
			s.hdrN += c
			b = b[c:]
			if s.hdrN == 4 {
				s.typ = s.hdr[0]
				s.remain = int(s.hdr[1]) | int(s.hdr[2])<<8 | int(s.hdr[3])<<16
				s.chunkLen = s.remain
				s.payload = s.payload[:0]
				s.chunkDone()
			}
			continue
		}
		c := min(s.remain, len(b))
		if s.typ == endChunkType && s.chunkLen == endLen {
			s.payload = append(s.payload, b[:c]...)
		}
		s.remain -= c
		b = b[c:]
		s.chunkDone()
	}
}

// chunkDone handles the end of a chunk's payload.
func (s *chunkScanner) chunkDone() {
	if s.remain > 0 {
		return
	}
	if s.typ == endChunkType && len(s.payload) == endLen && string(s.payload[:len(endMagic)]) == endMagic {
		s.sawEnd = true
		s.endCount = binary.LittleEndian.Uint64(s.payload[len(endMagic):])
	}
	s.hdrN = 0
}
