package engine

import (
	"bytes"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
)

// TestHoldForwarded: a load of an oid held by a forwarded commit waits
// until every hold of it is released and then returns the record stored
// meanwhile, never the one before; other oids load at once; a release
// called twice counts once.
func TestHoldForwarded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		o := mustAlloc(t, db, 2)
		other := o + 1
		mustCommit(t, db, record.Build(o, []byte("old")), rec(other))
		if _, err := db.Load(o); err != nil { // in the record cache now
			t.Fatal(err)
		}
		r1 := db.HoldForwarded([]uint64{o})
		r2 := db.HoldForwarded([]uint64{o, other})
		if db.ForwardsHeld() != 2 {
			t.Fatalf("held %d oids, want 2", db.ForwardsHeld())
		}
		got := make(chan []byte, 1)
		go func() {
			b, err := db.Load(o)
			if err != nil {
				b = []byte(err.Error())
			}
			got <- b
		}()
		r1()
		r1() // a second call is a no-op: o stays held by r2
		mustCommit(t, db, record.Build(o, []byte("new")))
		select {
		case b := <-got:
			t.Fatalf("load of a held oid returned %q before the hold was released", b)
		case <-time.After(100 * time.Millisecond):
		}
		r2()
		select {
		case b := <-got:
			if !bytes.Equal(b, record.Build(o, []byte("new"))) {
				t.Fatalf("load after the release: %q, want the new record", b)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("load still waiting after every hold was released")
		}
		if db.ForwardsHeld() != 0 {
			t.Fatalf("held %d oids after the releases", db.ForwardsHeld())
		}
		if _, err := db.Load(other); err != nil {
			t.Fatal(err)
		}
	})
}
