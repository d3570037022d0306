package txn

import (
	"context"
	"sync"
	"sync/atomic"
)

// Group is group commit: many goroutines wait for their already-applied
// transactions to become durable, and one call of the flush function covers
// every waiter present when it starts.
//
// A waiter that arrives while a flush runs is not covered by it (its
// transaction may have committed after the flush began) and joins the next
// group; that group's flush starts as soon as the running one returns. The
// error of a flush is returned to every waiter of its group.
//
// A Group is safe for use by many goroutines. The zero value is not usable;
// call NewGroup.
type Group struct {
	flush func() error

	mu      sync.Mutex
	next    *batch // waiters for the flush that has not started yet; owned by mu
	running bool   // a flusher goroutine is active; owned by mu

	flushes atomic.Uint64
	waits   atomic.Uint64
}

// batch is one group: the waiters covered by one flush.
type batch struct {
	done chan struct{} // closed after the flush returned; err is then set
	err  error
	n    int // waiters joined, for statistics; owned by Group.mu
}

// NewGroup returns a Group whose flushes call flush (for the engine,
// kv.Store.Flush).
func NewGroup(flush func() error) *Group {
	return &Group{flush: flush}
}

// Wait returns once a flush that started after Wait was called has
// finished, with that flush's error. If ctx ends first Wait returns
// ctx.Err(); the flush still happens for the other waiters.
func (g *Group) Wait(ctx context.Context) error {
	g.waits.Add(1)
	g.mu.Lock()
	b := g.next
	if b == nil {
		b = &batch{done: make(chan struct{})}
		g.next = b
	}
	b.n++
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loop runs flushes while waiters keep arriving, then exits.
func (g *Group) loop() {
	for {
		g.mu.Lock()
		b := g.next
		if b == nil {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.next = nil
		g.mu.Unlock()
		b.err = g.flush()
		g.flushes.Add(1)
		close(b.done)
	}
}

// Flushes returns how many flushes the Group has run.
func (g *Group) Flushes() uint64 { return g.flushes.Load() }

// Waits returns how many Wait calls the Group has seen.
func (g *Group) Waits() uint64 { return g.waits.Load() }
