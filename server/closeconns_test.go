package server

import (
	"testing"
	"time"
)

// CloseConns (a replication site reset in place) closes every open
// connection and the server goes on accepting new ones.
func TestCloseConns(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	a, b := ts.dial(t), ts.dial(t)
	if n := ts.srv.CloseConns("test reset"); n != 2 {
		t.Fatalf("CloseConns closed %d connections, want 2", n)
	}
	a.expectClosed(10 * time.Second)
	b.expectClosed(10 * time.Second)
	waitFor(t, 10*time.Second, "no connection left", func() bool { return ts.srv.NumConns() == 0 })
	c := ts.dial(t)
	if inv := c.sync(); len(inv) != 0 {
		t.Fatalf("new connection after CloseConns: invalid oids %v", inv)
	}
}
