package engine

import (
	"context"
	"testing"
	"time"
)

// TestSyncFollowerFrom: the wait ends once a read of the change table that
// began after the mark has ended. A read that ran after the mark (while a
// commit request queued for its token) counts without another; with none,
// one is asked for (kick) and waited for, woken by its end.
func TestSyncFollowerFrom(t *testing.T) {
	db := &DB{}
	db.changes.kick = make(chan struct{}, 1)
	pass := func() { // one read of the follower
		db.changes.begun.Add(1)
		db.changes.passes.Add(1)
		db.changes.endPass()
	}
	mark := db.FollowerMark()
	pass()
	done := make(chan struct{})
	go func() { db.SyncFollowerFrom(context.Background(), mark, time.Minute); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a read after the mark did not count")
	}
	if len(db.changes.kick) != 0 {
		t.Fatal("a read was asked for although one ran after the mark")
	}

	mark = db.FollowerMark()
	done = make(chan struct{})
	go func() { db.SyncFollowerFrom(context.Background(), mark, time.Minute); close(done) }()
	select {
	case <-db.changes.kick:
	case <-time.After(10 * time.Second):
		t.Fatal("no read asked for")
	}
	select {
	case <-done:
		t.Fatal("returned before the read it asked for")
	default:
	}
	pass()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("not woken by the end of the read")
	}
}
