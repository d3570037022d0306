package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// tinyServer is an in-memory Durus server of a few lines: enough protocol
// (V, M, L, B, S, C, P, Q, '.') to check every request Conn makes, byte
// for byte. It records the commit data it accepts and the requests seen.
type tinyServer struct {
	mu      sync.Mutex
	recs    map[uint64][]byte
	next    uint64
	invalid []uint64 // returned by the next S or C
	data    [][]byte // phase-2 data of every commit
	quit    bool
	bye     bool
}

func (s *tinyServer) serve(t *testing.T, nc net.Conn) {
	defer nc.Close()
	r, w := bufio.NewReader(nc), bufio.NewWriter(nc)
	for {
		op, err := r.ReadByte()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.handle(t, op, r, w)
		s.mu.Unlock()
		w.Flush()
	}
}

// handle answers one request op; s.mu is held.
func (s *tinyServer) handle(t *testing.T, op byte, r *bufio.Reader, w *bufio.Writer) {
	var b [8]byte
	u32 := func() uint32 {
		io.ReadFull(r, b[:4])
		return binary.BigEndian.Uint32(b[:4])
	}
	u64 := func() uint64 {
		io.ReadFull(r, b[:])
		return binary.BigEndian.Uint64(b[:])
	}
	switch op {
	case 'V':
		w.Write(binary.BigEndian.AppendUint32(nil, u32()))
	case 'M':
		n, _ := r.ReadByte()
		for range n {
			w.Write(binary.BigEndian.AppendUint64(nil, s.next))
			s.next++
		}
	case 'L':
		s.load(w, u64())
	case 'B':
		for range u32() {
			s.load(w, u64())
		}
	case 'S':
		s.invalidList(w)
	case 'C':
		s.invalidList(w)
		w.Flush()
		data := make([]byte, u32())
		io.ReadFull(r, data)
		if len(data) > 0 {
			s.store(data)
			w.WriteByte('O')
		}
	case 'P':
		w.WriteByte('O')
	case 'Q':
		s.quit = true
	case '.':
		s.bye = true
	default:
		t.Errorf("tiny server: unknown request %q", op)
	}
}

// load writes the reply to a load of oid.
func (s *tinyServer) load(w *bufio.Writer, oid uint64) {
	rec, ok := s.recs[oid]
	if !ok {
		w.WriteByte('K')
		return
	}
	w.WriteByte('O')
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(rec))))
	w.Write(rec)
}

// invalidList writes the pending invalidations and clears them.
func (s *tinyServer) invalidList(w *bufio.Writer) {
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(s.invalid))))
	for _, o := range s.invalid {
		w.Write(binary.BigEndian.AppendUint64(nil, o))
	}
	s.invalid = nil
}

// store keeps the records of commit data.
func (s *tinyServer) store(data []byte) {
	s.data = append(s.data, data)
	for len(data) > 0 {
		l := binary.BigEndian.Uint32(data)
		oid := binary.BigEndian.Uint64(data[4:])
		s.recs[oid] = data[12 : 4+l]
		data = data[4+l:]
	}
}

// pair returns a Conn (made by mk) talking to a fresh tinyServer.
func pair(t *testing.T, mk func(net.Conn, time.Duration) *Conn) (*Conn, *tinyServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &tinyServer{recs: map[uint64][]byte{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err == nil {
			s.serve(t, nc)
		}
	}()
	t.Cleanup(func() { <-done })
	nc, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := mk(nc, 5*time.Second)
	t.Cleanup(func() { c.Close() })
	return c, s
}

func rec(oid uint64, text string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, oid), text...)
}

// TestConn drives every typed request against the tiny server, buffered
// and exact.
func TestConn(t *testing.T) {
	for name, mk := range map[string]func(net.Conn, time.Duration) *Conn{"buffered": NewConn, "exact": NewExactConn} {
		t.Run(name, func(t *testing.T) {
			c, s := pair(t, mk)
			if err := c.Version(); err != nil {
				t.Fatal(err)
			}
			oids, err := c.NewOIDs(3)
			if err != nil || !slices.Equal(oids, []uint64{0, 1, 2}) {
				t.Fatalf("NewOIDs(3) = %v, %v", oids, err)
			}
			if _, err := c.NewOIDs(0); !errors.Is(err, ErrCount) {
				t.Fatalf("NewOIDs(0): %v, want ErrCount", err)
			}
			alloc, err := c.Alloc(300)
			if err != nil || len(alloc) != 300 || alloc[0] != 3 || slices.Contains(alloc, 0) {
				t.Fatalf("Alloc(300) = %d oids from %v, %v", len(alloc), alloc[:1], err)
			}
			s.invalid = []uint64{7, 9}
			inv, st, err := c.Commit([][]byte{rec(0, "root"), rec(1, "one")})
			if err != nil || st != StatusOK || !slices.Equal(inv, []uint64{7, 9}) {
				t.Fatalf("Commit = %v %q %v", inv, st, err)
			}
			want := AppendFrame(AppendFrame(nil, 0, rec(0, "root")), 1, rec(1, "one"))
			if !bytes.Equal(s.data[0], want) || !bytes.Equal(Frames(rec(0, "root"), rec(1, "one")), want) {
				t.Fatalf("commit data %x, want %x", s.data[0], want)
			}
			if st, got, err := c.Load(1); err != nil || st != StatusOK || !bytes.Equal(got, rec(1, "one")) {
				t.Fatalf("Load(1) = %q %q %v", st, got, err)
			}
			if st, err := c.LoadStatus(5); err != nil || st != StatusKey {
				t.Fatalf("LoadStatus(5) = %q %v", st, err)
			}
			s.invalid = []uint64{4}
			if st, err := c.CommitData(AppendFrame(nil, 2, rec(2, "two"))); err != nil || st != StatusOK {
				t.Fatalf("CommitData = %q %v", st, err)
			}
			if err := c.SendBulk([]uint64{0, 5, 2}); err != nil {
				t.Fatal(err)
			}
			st0, r0, err0 := c.ReadLoad()
			st1, err1 := c.SkipLoad()
			st2, err2 := c.SkipLoad()
			if !bytes.Equal(r0, rec(0, "root")) || st0 != 'O' || st1 != 'K' || st2 != 'O' || errors.Join(err0, err1, err2) != nil {
				t.Fatalf("bulk: %q %q %q %q %v %v %v", st0, r0, st1, st2, err0, err1, err2)
			}
			if inv, err := c.Sync(); err != nil || len(inv) != 0 {
				t.Fatalf("Sync = %v %v", inv, err)
			}
			if inv, st, err := c.Commit(nil); err != nil || st != 0 || len(inv) != 0 {
				t.Fatalf("empty Commit = %v %q %v", inv, st, err)
			}
			if err := c.Pack(); err != nil {
				t.Fatal(err)
			}
			if err := c.Send([]byte{'M'}, []byte{2}); err != nil {
				t.Fatal(err)
			}
			if b, err := c.ReadFull(16); err != nil || binary.BigEndian.Uint64(b[8:]) != 304 {
				t.Fatalf("raw M 2: %x %v", b, err)
			}
			if err := c.Quit(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestExactConnNoReadAhead: after a typed call on an exact Conn the next
// reply bytes are still on the socket, where a raw read finds them; a
// buffered Conn would have taken them.
func TestExactConnNoReadAhead(t *testing.T) {
	c, _ := pair(t, NewExactConn)
	// Two requests at once: the replies arrive together.
	if err := c.Send([]byte{'M', 1, 'M', 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.u64(); err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	c.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.NetConn(), b[:]); err != nil || binary.BigEndian.Uint64(b[:]) != 1 {
		t.Fatalf("raw read after a typed one: %x %v", b, err)
	}
}

// TestNetwork: the address forms Dial accepts.
func TestNetwork(t *testing.T) {
	for addr, want := range map[string][2]string{
		"127.0.0.1:1": {"tcp", "127.0.0.1:1"},
		"/tmp/s":      {"unix", "/tmp/s"},
		"./s":         {"unix", "./s"},
		"@abs":        {"unix", "\x00abs"},
	} {
		if n, a := network(addr); n != want[0] || a != want[1] {
			t.Errorf("network(%q) = %q %q, want %q", addr, n, a, want)
		}
	}
}

// TestDialUnix: Dial reaches a unix socket and Close says goodbye.
func TestDialUnix(t *testing.T) {
	sock := t.TempDir() + "/s"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &tinyServer{recs: map[uint64][]byte{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if nc, err := ln.Accept(); err == nil {
			s.serve(t, nc)
		}
	}()
	c, err := Dial(sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Version(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-done
	if !s.bye {
		t.Fatal("Close did not send '.'")
	}
}

// TestReadRenewsDeadline: a reply read on its own renews the read
// deadline, so an expired deadline set by the caller (a test asserting
// silence) does not fail it.
func TestReadRenewsDeadline(t *testing.T) {
	c, _ := pair(t, NewExactConn)
	if err := c.Send([]byte{'S'}); err != nil {
		t.Fatal(err)
	}
	c.NetConn().SetReadDeadline(time.Now().Add(-time.Second))
	if inv, err := c.ReadOIDs(); err != nil || len(inv) != 0 {
		t.Fatalf("ReadOIDs after an expired deadline: %v %v", inv, err)
	}
}
