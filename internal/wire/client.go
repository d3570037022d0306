// Package wire is a minimal client of the Durus protocol (PROTOCOL.md §4),
// speaking raw bytes. The crash harness, the load generator and tests use it
// to drive a server exactly as a stock client would, without Python.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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

// Conn is one client connection. Not safe for concurrent use.
type Conn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	buf [8]byte
	// Timeout bounds every request/reply exchange (0 = none).
	Timeout time.Duration
}

// Dial connects to a "host:port" TCP address or, if addr starts with "/",
// a unix socket path.
func Dial(addr string, timeout time.Duration) (*Conn, error) {
	network := "tcp"
	if len(addr) > 0 && addr[0] == '/' {
		network = "unix"
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return NewConn(c, timeout), nil
}

// NewConn speaks the protocol over c, already connected (tests wrap it, to
// count bytes for instance); timeout is as for Dial.
func NewConn(c net.Conn, timeout time.Duration) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10), Timeout: timeout}
}

// Close sends the stock client's goodbye byte "." and closes.
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

func (c *Conn) u32() (uint32, error) {
	if _, err := io.ReadFull(c.r, c.buf[:4]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(c.buf[:4]), nil
}

// Version sends V 1 and checks the reply.
func (c *Conn) Version() error {
	c.deadline()
	c.w.WriteByte('V')
	c.w.Write([]byte{0, 0, 0, 1})
	if err := c.w.Flush(); err != nil {
		return err
	}
	v, err := c.u32()
	if err == nil && v != 1 {
		err = fmt.Errorf("wire: server protocol %d", v)
	}
	return err
}

// NewOIDs asks for n (≤ 255) new oids with M.
func (c *Conn) NewOIDs(n int) ([]uint64, error) {
	c.deadline()
	c.w.Write([]byte{'M', byte(n)})
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	out := make([]uint64, n)
	for i := range out {
		if _, err := io.ReadFull(c.r, c.buf[:8]); err != nil {
			return nil, err
		}
		out[i] = binary.BigEndian.Uint64(c.buf[:8])
	}
	return out, nil
}

// Load sends L oid and returns the status and, for 'O', the record.
func (c *Conn) Load(oid uint64) (byte, []byte, error) {
	c.deadline()
	c.w.WriteByte('L')
	c.w.Write(binary.BigEndian.AppendUint64(c.buf[:0], oid))
	if err := c.w.Flush(); err != nil {
		return 0, nil, err
	}
	return c.loadResponse()
}

func (c *Conn) loadResponse() (byte, []byte, error) {
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

// Sync sends S and returns the invalidated oids.
func (c *Conn) Sync() ([]uint64, error) {
	c.deadline()
	c.w.WriteByte('S')
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return c.oidList()
}

func (c *Conn) oidList() ([]uint64, error) {
	k, err := c.u32()
	if err != nil {
		return nil, err
	}
	var out []uint64
	for i := uint32(0); i < k; i++ {
		if _, err := io.ReadFull(c.r, c.buf[:8]); err != nil {
			return nil, err
		}
		out = append(out, binary.BigEndian.Uint64(c.buf[:8]))
	}
	return out, nil
}

// Commit sends a whole commit (phase 1 and phase 2) of full records (each
// starting with its oid) and returns the phase-1 invalidations and the
// status byte. With no records it sends len 0 and returns status 0.
func (c *Conn) Commit(recs [][]byte) (invalid []uint64, status byte, err error) {
	c.deadline()
	c.w.WriteByte('C')
	if err := c.w.Flush(); err != nil {
		return nil, 0, err
	}
	if invalid, err = c.oidList(); err != nil {
		return nil, 0, err
	}
	total := 0
	for _, r := range recs {
		total += 4 + 8 + len(r)
	}
	c.w.Write(binary.BigEndian.AppendUint32(c.buf[:0], uint32(total)))
	for _, r := range recs {
		c.w.Write(binary.BigEndian.AppendUint32(c.buf[:0], uint32(8+len(r))))
		c.w.Write(r[:8])
		c.w.Write(r)
	}
	if err := c.w.Flush(); err != nil {
		return invalid, 0, err
	}
	if total == 0 {
		return invalid, 0, nil
	}
	status, err = c.r.ReadByte()
	return invalid, status, err
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
	c.w.WriteByte('Q')
	return c.w.Flush()
}
