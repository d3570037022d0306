package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
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

// loadFailStore is a memStore whose Load of ROOT_OID fails with an error
// other than "no record" while fail is set.
type loadFailStore struct {
	*memStore
	fail atomic.Bool
}

func (s *loadFailStore) Load(oid uint64) ([]byte, error) {
	if oid == record.RootOID && s.fail.Load() {
		return nil, errTest
	}
	return s.memStore.Load(oid)
}

// rootExists treats only "no record" as absent: when Load(0) fails
// otherwise, an allocation that would hand ROOT_OID out again (A5) fails
// (the connection is closed) rather than handing out a root that may exist.
func TestRootReleaseLoadError(t *testing.T) {
	st := &loadFailStore{memStore: newMemStore()}
	ts := startServer(t, Config{}, st)
	a := ts.dial(t)
	if o := a.newOIDs(2); o[0] != record.RootOID {
		t.Fatalf("first oids %v", o)
	}
	a.send([]byte{'.'})
	a.expectClosed(5 * time.Second)
	// ROOT_OID is released (A5): the next allocation would hand it out
	// again if Load(0) said it has no record; here Load(0) fails.
	st.fail.Store(true)
	b := ts.dial(t)
	waitFor(t, 5*time.Second, "a's unused set released", func() bool { return ts.srv.NumConns() == 1 })
	b.send([]byte{'N'})
	b.expectClosed(5 * time.Second)
	if !containsLog(ts, "oid allocation failed") {
		t.Fatal("allocation failure not logged")
	}
	// Once Load(0) works again, the root is handed out as A5 says.
	st.fail.Store(false)
	c := ts.dial(t)
	if o := c.newOIDs(1); o[0] != record.RootOID {
		t.Fatalf("after recovery: %v", o)
	}
}
