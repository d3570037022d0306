package server

import (
	"testing"
	"time"
)

// HoldConns (a replication site reset in place) closes every open
// connection; a connection accepted before release gets no answer until
// release (its requests wait, unregistered), then is served as any other.
func TestHoldConns(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	a, b := ts.dial(t), ts.dial(t)
	if inv := a.sync(); len(inv) != 0 { // registered
		t.Fatalf("a's sync: %v", inv)
	}
	b.sync()
	n, release := ts.srv.HoldConns("test reset")
	if n != 2 {
		t.Fatalf("HoldConns closed %d connections, want 2", n)
	}
	a.expectClosed(10 * time.Second)
	b.expectClosed(10 * time.Second)
	waitFor(t, 10*time.Second, "no connection left", func() bool { return ts.srv.NumConns() == 0 })

	c := ts.dialRaw(t)
	c.send([]byte("S"))
	c.expectSilence(200 * time.Millisecond) // held: not registered, nothing read
	if got := ts.srv.NumConns(); got != 0 {
		t.Fatalf("%d connections registered while held", got)
	}
	release()
	release() // a second call is harmless
	c.expect(u32(0))
	if inv := c.sync(); len(inv) != 0 {
		t.Fatalf("held connection after release: invalid oids %v", inv)
	}
	if got := ts.srv.NumConns(); got != 1 {
		t.Fatalf("%d connections registered after release, want 1", got)
	}
}

// TestHeldConnsCount: connections waiting to be registered (held by a
// reset in place; on a replica, waiting one follower read) count toward
// MaxConnections, each holding a descriptor and a goroutine: a flood during
// the wait is refused at once, not parked without bound.
func TestHeldConnsCount(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 3}, newMemStore())
	_, release := ts.srv.HoldConns("test reset")
	var held []*client
	for range 3 {
		c := ts.dialRaw(t)
		c.send([]byte("S"))
		held = append(held, c)
	}
	over := ts.dialRaw(t)
	over.expectClosed(10 * time.Second)
	release()
	for _, c := range held {
		c.expect(u32(0))
	}
}
