package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
)

// feed sends in on a new TCP connection, half-closes it, and reads replies
// until the server closes the connection. It fails if that takes over 20 s.
func feed(t testing.TB, addr string, in []byte) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		nc.Write(in) // the server may close early; that is fine
		nc.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(io.Discard, nc); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("server hung on the input: %v", err)
	}
}

// panicCounter is an Observer that counts the panics the connections'
// recover caught (Observer.Error(ErrPanic)).
type panicCounter struct {
	NopObserver
	n atomic.Uint64
}

// Error counts ErrPanic.
func (p *panicCounter) Error(kind ErrorKind) {
	if kind == ErrPanic {
		p.n.Add(1)
	}
}

// FuzzRequestStream feeds arbitrary byte streams to a running server: it
// must never crash, panic (also a panic that the connection's recover
// caught, which a client only sees as a closed connection) or hang, must
// keep serving, and the database must stay consistent (every record
// well-formed under its oid, no dangling refs).
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	addr := ln.Addr().String()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	panics := &panicCounter{}
	srv := New(Config{
		Logger:         logger,
		Observer:       panics,
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
		before := panics.n.Load()
		feed(t, addr, in)
		// The connection's recover counts a panic before it closes the
		// connection, so feed has seen it once it returns.
		if n := panics.n.Load() - before; n != 0 {
			t.Fatalf("serving the input panicked (%d panics recovered by the connection)", n)
		}
		// The server still answers.
		probe, err := net.DialTimeout("tcp", addr, 5*time.Second)
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

// C54 on the engine: random and mutated request streams against an
// engine-backed server, then the database check passes.
func TestRandomStreamsEngine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		st := openEngine(t, backend, engine.Options{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := New(Config{
			Logger: quietLogger(), NoQuit: true, MaxCommit: 1 << 20, MaxBulk: 4096,
			RequestTimeout: time.Second, WriteTimeout: time.Second,
		}, st)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background(), ln) }()
		defer func() { srv.Close(); <-done }()

		rng := rand.New(rand.NewPCG(1, 2))
		valid := func() []byte {
			// A plausible stream: allocate, commit records that refer to
			// each other and the root, load them.
			var b []byte
			b = append(b, 'M', byte(1+rng.IntN(8)))
			n := 1 + rng.IntN(4)
			var data []byte
			for i := range n {
				oid := uint64(rng.IntN(40))
				var refs []uint64
				if i > 0 {
					refs = append(refs, uint64(rng.IntN(40)))
				}
				data = append(data, frame(oid, record.Build(oid, []byte("state"), refs...))...)
			}
			b = append(b, 'C')
			b = append(b, u32(uint32(len(data)))...)
			b = append(b, data...)
			b = append(b, 'L')
			b = append(b, u64(uint64(rng.IntN(40)))...)
			b = append(b, 'S', 'B')
			b = append(b, u32(2)...)
			b = append(b, u64(0)...)
			b = append(b, u64(uint64(rng.IntN(40)))...)
			return b
		}
		for i := range 300 {
			in := valid()
			switch i % 3 {
			case 1: // flip bytes
				for range 1 + rng.IntN(4) {
					in[rng.IntN(len(in))] = byte(rng.IntN(256))
				}
			case 2: // truncate
				in = in[:rng.IntN(len(in))]
			}
			feed(t, ln.Addr().String(), in)
		}
		srv.Close()
		<-done
		done <- nil
		rep, err := st.db.Check(context.Background(), false)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("check found problems: %+v", rep.Problems)
		}
		if rep.Objects == 0 {
			t.Fatal("no stream stored anything")
		}
	})
}
