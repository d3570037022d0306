package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// growingStore is a boundedLoader whose record 1 grows before each read:
// each bounded load refuses it, measured anew, and meanwhile another
// request takes all the room in the budget for hold.
type growingStore struct {
	*memStore
	b     atomic.Pointer[inflight]
	size  atomic.Int64
	reads atomic.Int32
	hold  time.Duration
}

func (g *growingStore) LoadBounded(oid uint64, limit int) ([]byte, error) {
	n := g.size.Add(1000)
	g.reads.Add(1)
	if b := g.b.Load(); b != nil {
		if room := b.limit - b.usage(); room > 0 && b.acquire(context.Background(), room, 0) == nil {
			time.AfterFunc(g.hold, func() { b.cancel(room) })
		}
	}
	return nil, &loadSizeError{size: n, need: n, err: fmt.Errorf("record of %d bytes over %d", n, limit)}
}

// A load whose record grows at each read waits for room in the budget at
// most --inflight-wait in all, not at each of its reads (QA: each of 4
// reads waited up to --inflight-wait).
func TestLoadRegrowWaitBounded(t *testing.T) {
	const wait = time.Second
	g := &growingStore{memStore: newMemStore(), hold: 800 * time.Millisecond}
	g.size.Store(100 << 10)
	ts := startServer(t, Config{MaxInflight: 4 << 20, InflightWait: wait}, g)
	g.b.Store(ts.srv.inflight)
	c := ts.dial(t)
	start := time.Now()
	if st, _ := c.load(1); st != 'E' {
		t.Fatalf("load of a record that grows at each read: %q, want E", st)
	}
	// Waiting at each read: about 3 × 800 ms; in all: --inflight-wait.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the load waited %v for room (%d reads), want about --inflight-wait (%v)", took, g.reads.Load(), wait)
	}
}
