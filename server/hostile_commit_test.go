package server

import (
	"testing"
)

// A frame length that runs past the commit data with fewer than 8 bytes
// left (so no oid can be read) is answered E, not a recovered panic.
func TestShortLastFrame(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	c := ts.dial(t)
	c.begin()
	if st := c.commitData([]byte{0, 0, 0, 0x64, 0, 0}); st != statusRefused {
		t.Fatalf("status %q, want E", st)
	}
	// The connection is still served.
	if inv := c.sync(); len(inv) != 0 {
		t.Fatalf("invalid %v", inv)
	}
	if containsLog(ts, "panic") {
		t.Fatal("the commit reached a recovered panic")
	}
}
