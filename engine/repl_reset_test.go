package engine

import (
	"context"
	"testing"
	"time"
)

// releaseAll (a reset) wakes the loads waiting on forwarded commits'
// holds; a release function of a dropped hold then leaves a later hold of
// the same oid alone.
func TestReleaseAllForwardHolds(t *testing.T) {
	db := &DB{}
	db.ctx, db.cancel = context.WithCancel(context.Background())
	defer db.cancel()
	old := db.HoldForwarded([]uint64{7, 8})
	loaded := make(chan struct{})
	go func() { db.waitForwarded(7); close(loaded) }()
	db.fwd.releaseAll()
	select {
	case <-loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("a load waiting on a hold was not woken by releaseAll")
	}
	if n := db.ForwardsHeld(); n != 0 {
		t.Fatalf("%d oids held after releaseAll", n)
	}
	later := db.HoldForwarded([]uint64{7})
	old()
	if n := db.ForwardsHeld(); n != 1 {
		t.Fatalf("the release of a dropped hold released a later one: %d oids held", n)
	}
	later()
	if n := db.ForwardsHeld(); n != 0 {
		t.Fatalf("%d oids held after the last release", n)
	}
}
