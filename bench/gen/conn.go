package gen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Conn is one raw Durus protocol connection (PROTOCOL.md §4): the same
// bytes a stock client sends, without a client library in the way. It is
// not safe for concurrent use; the generator gives each goroutine its own.
type Conn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
	// b is scratch space for request headers and reply fields: a local
	// array would escape through the io interfaces and cost an allocation
	// per request.
	b [16]byte
}

// Dial connects to addr and sends V 1. addr is host:port (TCP), a unix
// socket path starting with "/" or ".", or "@name" for a Linux abstract
// socket. Only the connect has a timeout (5 s); requests have none, so the
// hot path stays free of deadline bookkeeping.
func Dial(addr string) (*Conn, error) {
	network, dialAddr := "tcp", addr
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, ".") {
		network = "unix"
	} else if strings.HasPrefix(addr, "@") {
		network, dialAddr = "unix", "\x00"+addr[1:]
	}
	nc, err := net.DialTimeout(network, dialAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &Conn{nc: nc, r: bufio.NewReaderSize(nc, 256<<10), w: bufio.NewWriterSize(nc, 256<<10)}
	c.w.Write([]byte{'V', 0, 0, 0, 1})
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	var v [4]byte
	if _, err := io.ReadFull(c.r, v[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("V reply from %s: %w", addr, err)
	}
	return c, nil
}

// Close sends the stock client's goodbye byte ('.') and closes the
// connection, so the server sees an orderly end rather than a reset.
func (c *Conn) Close() error {
	c.w.WriteByte('.')
	c.w.Flush()
	return c.nc.Close()
}

// SetDeadline sets a deadline on every later read and write (see
// net.Conn.SetDeadline). For probes such as a first-load poll; the
// generator's own loops never set one.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// NewOIDs sends M k (1 ≤ k ≤ 255, one byte on the wire) and returns the
// k oids the server allocated, oid 0 (the root) included if it comes.
func (c *Conn) NewOIDs(k int) ([]uint64, error) {
	if k < 1 || k > 255 {
		return nil, fmt.Errorf("M %d: count must be 1 to 255", k)
	}
	c.b[0], c.b[1] = 'M', byte(k)
	c.w.Write(c.b[:2])
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	out := make([]uint64, k)
	for i := range out {
		if _, err := io.ReadFull(c.r, c.b[:8]); err != nil {
			return nil, err
		}
		out[i] = binary.BigEndian.Uint64(c.b[:8])
	}
	return out, nil
}

// Alloc returns n oids other than 0, by M requests of at most 255. Oid 0
// is the root: skipping it keeps generated records from overwriting it.
func (c *Conn) Alloc(n int) ([]uint64, error) {
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

// AppendFrame appends to b one commit frame (int4 length, oid, record) for
// a record of oid with size data bytes ('a'…'z' repeated) and refs, the
// unit Commit's data is made of.
func AppendFrame(b []byte, oid uint64, size int, refs []uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(8+12+size+8*len(refs)))
	b = binary.BigEndian.AppendUint64(b, oid)
	b = binary.BigEndian.AppendUint64(b, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	for i := range size {
		b = append(b, byte('a'+i%26))
	}
	for _, r := range refs {
		b = binary.BigEndian.AppendUint64(b, r)
	}
	return b
}

// Commit runs both commit phases with data (concatenated frames, see
// AppendFrame), discarding the invalidation list, and returns the status
// byte ('O' for success).
func (c *Conn) Commit(data []byte) (byte, error) {
	c.w.WriteByte('C')
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c.r, c.b[:4]); err != nil {
		return 0, err
	}
	if _, err := c.r.Discard(8 * int(binary.BigEndian.Uint32(c.b[:4]))); err != nil {
		return 0, err
	}
	c.w.Write(binary.BigEndian.AppendUint32(c.b[:0], uint32(len(data))))
	c.w.Write(data)
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	return c.r.ReadByte()
}

// ReadLoad reads one load response (the reply to L, or one of the replies
// to B), discarding the record, and returns its status ('O' when found).
func (c *Conn) ReadLoad() (byte, error) {
	st, err := c.r.ReadByte()
	if err != nil || st != 'O' {
		return st, err
	}
	if _, err := io.ReadFull(c.r, c.b[:4]); err != nil {
		return 0, err
	}
	_, err = c.r.Discard(int(binary.BigEndian.Uint32(c.b[:4])))
	return st, err
}

// Load sends L oid and returns the reply's status, discarding the record.
func (c *Conn) Load(oid uint64) (byte, error) {
	c.b[0] = 'L'
	binary.BigEndian.PutUint64(c.b[1:9], oid)
	c.w.Write(c.b[:9])
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	return c.ReadLoad()
}
