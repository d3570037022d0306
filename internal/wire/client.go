// Package wire is the one raw client of the Durus protocol (PROTOCOL.md §4)
// in this repository: it sends the same bytes a stock client sends, without
// Python or a client library in the way. The crash harness, the recovery
// and server tests, the metrics tests and the benchmark load generator
// (bench/gen) all speak through it, so that a protocol detail is fixed in
// one place. Hostile tests that need malformed bytes use Send and ReadFull
// on a Conn made by NewExactConn, which never reads ahead, so the
// underlying net.Conn can also be read directly.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Status bytes of the protocol.
const (
	StatusOK      = 'O'
	StatusKey     = 'K'
	StatusInvalid = 'I'
	StatusRefused = 'E'
)

// ErrStatus is returned for a reply status that the call did not expect.
var ErrStatus = errors.New("wire: unexpected status")

// ErrCount is returned by NewOIDs and Alloc for a count the protocol cannot
// carry.
var ErrCount = errors.New("wire: bad oid count")

// reader is what a Conn reads replies from: a bufio.Reader, or an exact
// reader that never reads more than asked.
type reader interface {
	io.Reader
	io.ByteReader
}

// Conn is one client connection. Not safe for concurrent use, except that
// one goroutine may Send while another reads.
type Conn struct {
	c net.Conn
	r reader
	w *bufio.Writer
	// rb and wb are scratch space for reply fields and request headers
	// (separate, so a writer and a reader goroutine do not share them); a
	// local array would escape through the io interfaces and allocate.
	rb, wb [16]byte
	// Timeout bounds every request/reply exchange (0 = none).
	Timeout time.Duration
}

// Dial connects to addr and returns a buffered Conn: addr is host:port
// (TCP), a unix socket path starting with "/" or ".", or "@name" for a
// Linux abstract socket. timeout bounds the connect and becomes
// Conn.Timeout. Dial sends nothing; see Version.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	nw, dialAddr := network(addr)
	c, err := net.DialTimeout(nw, dialAddr, timeout)
	if err != nil {
		return nil, fmt.Errorf("wire: dial %s: %w", addr, err)
	}
	return NewConn(c, timeout), nil
}

// network returns the network and the address net.Dial takes for addr,
// as Dial reads it.
func network(addr string) (nw, dialAddr string) {
	switch {
	case strings.HasPrefix(addr, "/"), strings.HasPrefix(addr, "."):
		return "unix", addr
	case strings.HasPrefix(addr, "@"):
		return "unix", "\x00" + addr[1:]
	}
	return "tcp", addr
}

// NewConn speaks the protocol over c, already connected (tests wrap it, to
// count bytes for instance), with buffered reads; timeout is as for Dial.
func NewConn(c net.Conn, timeout time.Duration) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10), Timeout: timeout}
}

// NewExactConn is NewConn without read-ahead: every read takes from c
// exactly the bytes the reply needs, so a test can mix Conn calls with
// reads of its own on c (NetConn). Slower; for tests only.
func NewExactConn(c net.Conn, timeout time.Duration) *Conn {
	return &Conn{c: c, r: &exactReader{c: c}, w: bufio.NewWriterSize(c, 64<<10), Timeout: timeout}
}

// exactReader reads straight from the connection, one call per request.
type exactReader struct {
	c net.Conn
	b [1]byte
}

func (e *exactReader) Read(p []byte) (int, error) { return e.c.Read(p) }

func (e *exactReader) ReadByte() (byte, error) {
	_, err := io.ReadFull(e.c, e.b[:])
	return e.b[0], err
}

// NetConn returns the connection under c, for socket options, deadlines
// and raw reads (only with NewExactConn, or nothing may be buffered).
func (c *Conn) NetConn() net.Conn { return c.c }

// Close sends the stock client's goodbye byte "." and closes, so the
// server sees an orderly end rather than a reset.
func (c *Conn) Close() error {
	c.w.WriteByte('.')
	c.w.Flush()
	return c.c.Close()
}

func (c *Conn) deadline() {
	if c.Timeout > 0 {
		c.c.SetDeadline(time.Now().Add(c.Timeout))
	}
}

// readDeadline renews the read deadline (Timeout) for a reply read on
// its own, after a Send or after the caller set a deadline of its own.
func (c *Conn) readDeadline() {
	if c.Timeout > 0 {
		c.c.SetReadDeadline(time.Now().Add(c.Timeout))
	}
}

func (c *Conn) u32() (uint32, error) {
	if _, err := io.ReadFull(c.r, c.rb[:4]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(c.rb[:4]), nil
}

func (c *Conn) u64() (uint64, error) {
	if _, err := io.ReadFull(c.r, c.rb[:8]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(c.rb[:8]), nil
}

// discard skips n bytes of the reply.
func (c *Conn) discard(n int) error {
	if br, ok := c.r.(*bufio.Reader); ok {
		_, err := br.Discard(n)
		return err
	}
	_, err := io.CopyN(io.Discard, c.r, int64(n))
	return err
}

// Send writes parts as they are and flushes, with a write deadline of
// Timeout: for requests the typed methods do not make (hostile bytes, B,
// pipelining). It does not read.
func (c *Conn) Send(parts ...[]byte) error {
	if c.Timeout > 0 {
		c.c.SetWriteDeadline(time.Now().Add(c.Timeout))
	}
	for _, p := range parts {
		c.w.Write(p)
	}
	return c.w.Flush()
}

// ReadFull reads exactly n reply bytes, with a read deadline of Timeout.
func (c *Conn) ReadFull(n int) ([]byte, error) {
	c.readDeadline()
	b := make([]byte, n)
	_, err := io.ReadFull(c.r, b)
	return b, err
}

// Version sends V 1 and checks the reply.
func (c *Conn) Version() error {
	c.deadline()
	c.w.Write([]byte{'V', 0, 0, 0, 1})
	if err := c.w.Flush(); err != nil {
		return err
	}
	v, err := c.u32()
	if err == nil && v != 1 {
		err = fmt.Errorf("wire: server protocol %d", v)
	}
	return err
}

// NewOIDs asks for n (1 to 255, one byte on the wire) new oids with M and
// returns them, oid 0 (the root) included if it comes.
func (c *Conn) NewOIDs(n int) ([]uint64, error) {
	if n < 1 || n > 255 {
		return nil, fmt.Errorf("%w: M %d (1 to 255)", ErrCount, n)
	}
	c.deadline()
	c.wb[0], c.wb[1] = 'M', byte(n)
	c.w.Write(c.wb[:2])
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		o, err := c.u64()
		if err != nil {
			return nil, err
		}
		out[i] = o
	}
	return out, nil
}

// Alloc returns n oids other than 0, by M requests of at most 255. Oid 0
// is the root: skipping it keeps generated records from overwriting it.
func (c *Conn) Alloc(n int) ([]uint64, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: %d", ErrCount, n)
	}
	out := make([]uint64, 0, n)
	for len(out) < n {
		o, err := c.NewOIDs(min(255, n-len(out)))
		if err != nil {
			return nil, err
		}
		for _, oid := range o {
			if oid != 0 {
				out = append(out, oid)
			}
		}
	}
	return out, nil
}

// sendLoad writes L oid.
func (c *Conn) sendLoad(oid uint64) error {
	c.deadline()
	c.wb[0] = 'L'
	binary.BigEndian.PutUint64(c.wb[1:9], oid)
	c.w.Write(c.wb[:9])
	return c.w.Flush()
}

// Load sends L oid and returns the status and, for 'O', the record.
func (c *Conn) Load(oid uint64) (byte, []byte, error) {
	if err := c.sendLoad(oid); err != nil {
		return 0, nil, err
	}
	return c.ReadLoad()
}

// LoadStatus sends L oid and returns the status, discarding the record
// (no allocation: the load generator's request).
func (c *Conn) LoadStatus(oid uint64) (byte, error) {
	if err := c.sendLoad(oid); err != nil {
		return 0, err
	}
	return c.SkipLoad()
}

// SendBulk sends B with oids; read the len(oids) replies with ReadLoad or
// SkipLoad.
func (c *Conn) SendBulk(oids []uint64) error {
	c.deadline()
	c.wb[0] = 'B'
	binary.BigEndian.PutUint32(c.wb[1:5], uint32(len(oids)))
	c.w.Write(c.wb[:5])
	for _, o := range oids {
		binary.BigEndian.PutUint64(c.wb[:8], o)
		c.w.Write(c.wb[:8])
	}
	return c.w.Flush()
}

// ReadLoad reads one load reply (to L, or one of those to B): the status
// and, for 'O', the record. Like every reply read, it renews the read
// deadline.
func (c *Conn) ReadLoad() (byte, []byte, error) {
	c.readDeadline()
	st, err := c.r.ReadByte()
	if err != nil || st != StatusOK {
		return st, nil, err
	}
	n, err := c.u32()
	if err != nil {
		return st, nil, err
	}
	rec := make([]byte, n)
	_, err = io.ReadFull(c.r, rec)
	return st, rec, err
}

// SkipLoad is ReadLoad discarding the record.
func (c *Conn) SkipLoad() (byte, error) {
	c.readDeadline()
	st, err := c.r.ReadByte()
	if err != nil || st != StatusOK {
		return st, err
	}
	n, err := c.u32()
	if err != nil {
		return st, err
	}
	return st, c.discard(int(n))
}

// Sync sends S and returns the invalidated oids.
func (c *Conn) Sync() ([]uint64, error) { return c.oidRequest('S') }

// oidRequest sends the one-byte request op and reads the oid list that
// answers it (S, C).
func (c *Conn) oidRequest(op byte) ([]uint64, error) {
	c.deadline()
	c.w.WriteByte(op)
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return c.ReadOIDs()
}

// maxList bounds an oid list a reply may announce, so a corrupt count
// fails instead of allocating gigabytes.
const maxList = 1 << 24

// ReadOIDs reads an oid list (int4 count, then the oids), the reply to S
// and to C phase 1, for a request sent with Send.
func (c *Conn) ReadOIDs() ([]uint64, error) {
	c.readDeadline()
	k, err := c.u32()
	if err != nil {
		return nil, err
	}
	if k > maxList {
		return nil, fmt.Errorf("wire: oid list of %d", k)
	}
	out := make([]uint64, 0, k)
	for range k {
		o, err := c.u64()
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Begin sends C (commit phase 1) and returns the invalidated oids.
func (c *Conn) Begin() ([]uint64, error) { return c.oidRequest('C') }

// Finish sends commit phase 2: the length of data and data (frames, see
// AppendFrame) as they are, and returns the status byte. With no data
// (an abort) the server sends nothing and Finish returns status 0.
func (c *Conn) Finish(data []byte) (byte, error) {
	c.deadline()
	c.w.Write(binary.BigEndian.AppendUint32(c.wb[:0], uint32(len(data))))
	c.w.Write(data)
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	if len(data) == 0 {
		return 0, nil
	}
	return c.r.ReadByte()
}

// Commit sends a whole commit (phase 1 and phase 2) of full records (each
// starting with its oid) and returns the phase-1 invalidations and the
// status byte. With no records it sends len 0 and returns status 0.
func (c *Conn) Commit(recs [][]byte) (invalid []uint64, status byte, err error) {
	if invalid, err = c.Begin(); err != nil {
		return nil, 0, err
	}
	status, err = c.Finish(Frames(recs...))
	return invalid, status, err
}

// CommitData runs both commit phases with data (frames, see AppendFrame),
// discarding the invalidation list without allocating, and returns the
// status byte ('O' for success).
func (c *Conn) CommitData(data []byte) (byte, error) {
	c.deadline()
	c.w.WriteByte('C')
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	k, err := c.u32()
	if err != nil {
		return 0, err
	}
	if err := c.discard(8 * int(k)); err != nil {
		return 0, err
	}
	return c.Finish(data)
}

// AppendFrame appends one commit frame to b: the int4 length, oid and rec
// (a record, which itself starts with its oid).
func AppendFrame(b []byte, oid uint64, rec []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(8+len(rec)))
	b = binary.BigEndian.AppendUint64(b, oid)
	return append(b, rec...)
}

// Frames encodes records as commit data, each under the oid it starts
// with.
func Frames(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = AppendFrame(b, binary.BigEndian.Uint64(r[:8]), r)
	}
	return b
}

// Pack sends P and expects O.
func (c *Conn) Pack() error {
	c.deadline()
	c.w.WriteByte('P')
	if err := c.w.Flush(); err != nil {
		return err
	}
	st, err := c.r.ReadByte()
	if err == nil && st != StatusOK {
		err = fmt.Errorf("%w %q after P", ErrStatus, st)
	}
	return err
}

// Quit sends Q (the server shuts down; no reply).
func (c *Conn) Quit() error {
	c.deadline()
	c.w.WriteByte('Q')
	return c.w.Flush()
}
