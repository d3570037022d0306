package server

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// lagReplica is a fakeReplica whose change follower lags behind the
// records, as a real replica's does: apply stores records here at once
// (loads see them), and their invalidations reach the clients only at the
// follower's next read (report, or the read SyncFollowerFrom asks for).
type lagReplica struct {
	*fakeReplica
	mu         sync.Mutex
	unreported []uint64
	reads      int // follower reads asked for by SyncFollowerFrom
}

// apply stores recs on the replica without reporting them.
func (l *lagReplica) apply(t *testing.T, oids []uint64, recs ...[]byte) {
	t.Helper()
	p, err := l.db.Stage(context.Background(), recs)
	if err == nil {
		err = p.Wait(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.unreported = append(l.unreported, oids...)
	l.mu.Unlock()
}

// report is one read of the follower: what was applied is invalidated
// for every registered client.
func (l *lagReplica) report() {
	l.mu.Lock()
	oids := l.unreported
	l.unreported = nil
	l.mu.Unlock()
	if len(oids) > 0 {
		l.srv.InvalidateReplicated(oids)
	}
}

func (l *lagReplica) SyncFollowerFrom(context.Context, uint64, time.Duration) {
	l.mu.Lock()
	l.reads++
	l.mu.Unlock()
	l.report()
}

// TestReplicaRegistersAfterFollowerRead: a client connecting to a replica
// after a commit was applied there, but before the change follower
// reported it, is not told of that commit (its loads already see it: the
// invalidation would be spurious, its first load answered I); the
// clients connected before are, and a commit applied after the new
// client connected reaches it.
func TestReplicaRegistersAfterFollowerRead(t *testing.T) {
	rts, f := startFakeGroup(t)
	l := &lagReplica{fakeReplica: f}
	rts.stop(t)
	rts = startServer(t, Config{}, l)
	f.srv = rts.srv

	old := rts.dial(t)
	if inv := old.sync(); len(inv) != 0 {
		t.Fatalf("old client's first sync: %v", inv)
	}
	root2 := rec(0, "root 2")
	l.apply(t, []uint64{0}, root2) // applied here, not yet reported

	c := rts.dial(t)
	if inv := c.sync(); len(inv) != 0 { // a round trip: c is registered
		t.Fatalf("new client's first sync: %v", inv)
	}
	l.report() // the follower's next read
	if inv := c.sync(); len(inv) != 0 {
		t.Fatalf("new client told of a commit applied before it connected: %v", inv)
	}
	if st, got := c.load(0); st != 'O' || !bytes.Equal(got, root2) {
		t.Fatalf("new client's load of the root: %q %q", st, got)
	}
	if inv := old.sync(); !slices.Equal(inv, []uint64{0}) {
		t.Fatalf("old client's invalidations: %v, want [0]", inv)
	}

	l.apply(t, []uint64{0}, rec(0, "root 3"))
	l.report()
	if inv := c.sync(); !slices.Equal(inv, []uint64{0}) {
		t.Fatalf("new client's invalidations after a later commit: %v, want [0]", inv)
	}
	l.mu.Lock()
	reads := l.reads
	l.mu.Unlock()
	if reads != 2 {
		t.Fatalf("follower reads asked at connection: %d, want 2 (one per client)", reads)
	}
}
