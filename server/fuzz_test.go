package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
)

// pipeListener hands out in-memory connections (net.Pipe).
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial returns the client end of a new connection.
func (l *pipeListener) dial() (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-time.After(5 * time.Second):
		return nil, errors.New("accept timed out")
	}
}

// FuzzRequestStream feeds arbitrary byte streams to a running server: it
// must never crash or hang, must keep serving, and the database must stay
// consistent (every record well-formed under its oid, no dangling refs).
func FuzzRequestStream(f *testing.F) {
	seeds := [][]byte{
		[]byte("V\x00\x00\x00\x01M\x20L\x00\x00\x00\x00\x00\x00\x00\x00S"),
		append([]byte("M\x02C"), append(u32(uint32(len(txnData(rec(0, "root", 1), rec(1, "one"))))), txnData(rec(0, "root", 1), rec(1, "one"))...)...),
		append([]byte("C"), append(u32(24), frame(0, rec(0, "oops"))...)...),
		[]byte("B\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
		[]byte("C\x00\x00\x00\x00SPN"),
		[]byte("C\xff\xff\xff\xff\x00\x00"),
		[]byte("B\xff\xff\xff\xff"),
		[]byte("V\x00\x00\x00\x02N"),
		[]byte("Q.N"),
		{0x00},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	m := newMemStore()
	ln := newPipeListener()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(Config{
		Logger:         logger,
		NoQuit:         true,
		MaxCommit:      1 << 20,
		MaxBulk:        4096,
		RequestTimeout: 2 * time.Second,
		WriteTimeout:   2 * time.Second,
	}, m)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	f.Cleanup(func() {
		srv.Close()
		<-done
	})

	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := ln.dial()
		if err != nil {
			t.Fatal(err)
		}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			io.Copy(io.Discard, nc)
		}()
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		nc.Write(in) // the server may close early; that is fine
		nc.Close()
		select {
		case <-drained:
		case <-time.After(25 * time.Second):
			t.Fatal("server hung on the input")
		}
		// The server still answers.
		probe, err := ln.dial()
		if err != nil {
			t.Fatal(err)
		}
		probe.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := probe.Write([]byte("V\x00\x00\x00\x01")); err != nil {
			t.Fatalf("probe: %v", err)
		}
		var b [4]byte
		if _, err := io.ReadFull(probe, b[:]); err != nil || b != [4]byte{0, 0, 0, 1} {
			t.Fatalf("probe reply %x %v", b, err)
		}
		probe.Close()
		// Consistency: what check would verify.
		m.mu.Lock()
		defer m.mu.Unlock()
		for oid, r := range m.recs {
			p, err := record.ParseFor(oid, r)
			if err != nil {
				t.Fatalf("stored malformed record: %v", err)
			}
			for _, ref := range p.RefSet() {
				if _, ok := m.recs[ref]; !ok {
					t.Fatalf("oid %d has a dangling ref %d", oid, ref)
				}
			}
		}
	})
}
