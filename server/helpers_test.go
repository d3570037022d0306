package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// logBuf collects a server's log lines for assertions.
type logBuf = testlog.Buffer

// testServer is a running server on an ephemeral 127.0.0.1 port.
type testServer struct {
	srv  *Server
	st   Storage
	addr string
	net  string
	logs *logBuf
	done chan error
}

// startServer serves st on 127.0.0.1:0 (or ln if given) and stops it at cleanup.
func startServer(t testing.TB, cfg Config, st Storage) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, cfg, st, ln)
}

func serveOn(t testing.TB, cfg Config, st Storage, ln net.Listener) *testServer {
	t.Helper()
	ts := &testServer{st: st, addr: ln.Addr().String(), net: ln.Addr().Network(), logs: &logBuf{}, done: make(chan error, 1)}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ts.srv = New(cfg, st)
	if es, ok := st.(*engineStore); ok {
		es.relay.Attach(ts.srv)
	}
	go func() { ts.done <- ts.srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

// stop shuts the server down and waits for Serve to return.
func (ts *testServer) stop(t testing.TB) {
	ts.srv.Close()
	select {
	case <-ts.done:
		ts.done <- nil // later stops return at once
	case <-time.After(15 * time.Second):
		t.Errorf("server did not stop within 15 s")
	}
}

// client is a test's protocol client: an internal/wire connection without
// read-ahead (so tests may also read nc directly), failing the test on any
// I/O error. Tests build it as &client{t: t, nc: nc}; the wire.Conn is
// made on first use.
type client struct {
	t  testing.TB
	nc net.Conn
	w  *wire.Conn
}

// wc returns the wire connection over c.nc.
func (c *client) wc() *wire.Conn {
	if c.w == nil {
		c.w = wire.NewExactConn(c.nc, 10*time.Second)
	}
	return c.w
}

// must fails the test on err, naming what was being done.
func (c *client) must(what string, err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// dial connects and makes one S round trip, so the server has registered
// the connection (and its empty invalid set) when dial returns.
func (ts *testServer) dial(t testing.TB) *client {
	t.Helper()
	c := ts.dialRaw(t)
	if inv := c.sync(); len(inv) != 0 {
		t.Fatalf("fresh connection has invalid oids %v", inv)
	}
	return c
}

// dialRaw connects without sending anything.
func (ts *testServer) dialRaw(t testing.TB) *client {
	t.Helper()
	nc, err := net.DialTimeout(ts.net, ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

// send writes raw bytes (within 10 s).
func (c *client) send(parts ...[]byte) {
	c.t.Helper()
	c.must("write", c.wc().Send(parts...))
}

// read reads exactly n bytes within 10 s.
func (c *client) read(n int) []byte {
	c.t.Helper()
	b, err := c.wc().ReadFull(n)
	c.must(fmt.Sprintf("read %d bytes", n), err)
	return b
}

func (c *client) expect(want []byte) {
	c.t.Helper()
	got := c.read(len(want))
	if !bytes.Equal(got, want) {
		c.t.Fatalf("got %x, want %x", got, want)
	}
}

func (c *client) status(want byte) {
	c.t.Helper()
	if got := c.read(1)[0]; got != want {
		c.t.Fatalf("status %q, want %q", got, want)
	}
}

// expectClosed asserts the server closes the connection without sending
// anything more, within d.
func (c *client) expectClosed(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.nc.Read(b[:])
	if n != 0 {
		c.t.Fatalf("got byte %x, want the connection closed", b[0])
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("connection not closed within %v: %v", d, err)
	}
}

// expectSilence asserts nothing arrives for d.
func (c *client) expectSilence(d time.Duration) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := c.nc.Read(b[:])
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("expected silence, got %d bytes, err %v", n, err)
	}
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// newOIDs sends M k and returns the oids.
func (c *client) newOIDs(k int) []uint64 {
	c.t.Helper()
	oids, err := c.wc().NewOIDs(k)
	c.must(fmt.Sprintf("M %d", k), err)
	return oids
}

// sync sends S and returns the invalid oids.
func (c *client) sync() []uint64 {
	c.t.Helper()
	inv, err := c.wc().Sync()
	c.must("S", err)
	return inv
}

// oidList reads an oid list (the reply to S or C phase 1).
func (c *client) oidList() []uint64 {
	c.t.Helper()
	inv, err := c.wc().ReadOIDs()
	c.must("oid list", err)
	return inv
}

// frame encodes one commit frame for rec (stored under oid).
func frame(oid uint64, rec []byte) []byte { return wire.AppendFrame(nil, oid, rec) }

// txnData encodes records as commit data, each under its own oid.
func txnData(recs ...[]byte) []byte { return wire.Frames(recs...) }

// begin sends phase 1 and returns the invalid list.
func (c *client) begin() []uint64 {
	c.t.Helper()
	inv, err := c.wc().Begin()
	c.must("C", err)
	return inv
}

// commitData sends phase 2 with data and returns the status byte.
func (c *client) commitData(data []byte) byte {
	c.t.Helper()
	if len(data) == 0 {
		c.t.Fatal("commitData with no data (an abort) has no status to read")
	}
	st, err := c.wc().Finish(data)
	c.must("commit phase 2", err)
	return st
}

// commit runs both phases for recs and returns (invalid list, status).
func (c *client) commit(recs ...[]byte) ([]uint64, byte) {
	c.t.Helper()
	inv := c.begin()
	return inv, c.commitData(txnData(recs...))
}

// load sends L oid and returns the status and record.
func (c *client) load(oid uint64) (byte, []byte) {
	c.t.Helper()
	st, rec, err := c.wc().Load(oid)
	c.must(fmt.Sprintf("L %d", oid), err)
	return st, rec
}

// loadResponse reads one load reply (to L or B).
func (c *client) loadResponse() (byte, []byte) {
	c.t.Helper()
	st, rec, err := c.wc().ReadLoad()
	c.must("load reply", err)
	return st, rec
}

// rec builds a record with data text and refs.
func rec(oid uint64, text string, refs ...uint64) []byte {
	return record.Build(oid, []byte(text), refs...)
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	proc.WaitForT(t, d, what, cond)
}

func containsLog(ts *testServer, s string) bool { return strings.Contains(ts.logs.String(), s) }
