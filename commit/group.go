package commit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// ErrFlushPanicked is the error (errors.Is) that the other members of a
// group get when the flush function panicked on its leader's goroutine.
var ErrFlushPanicked = errors.New("commit: group flush panicked")

// Group is leader/follower batching (group commit): many goroutines wait,
// and one call of the flush function covers every waiter present when it
// starts. The engine runs two (engine/pipeline.go): apply runs, whose
// function writes every staged commit in one transaction, and group
// flushes, whose function applies what is queued and then makes it durable
// with one kv.Store.Flush.
//
// Leader/follower: a waiter arriving when no flush runs flushes at once on
// its own goroutine (no hand-off to another goroutine, whose scheduling
// delay measured ~190 µs on a loaded 2-core machine). Waiters arriving while
// a flush runs join the next group; when the running flush returns, its
// leader promotes one member of that group, which flushes for all of them.
// A waiter is never covered by a flush that began before it arrived. The
// error of a flush is returned to every waiter of its group; a panic of
// the flush function continues on its leader's goroutine (see lead).
//
// A Group is safe for use by many goroutines. The zero value is not usable;
// call NewGroup or NewHandoffGroup.
type Group struct {
	flush   func() error
	handoff bool // the leader yields to the next leader it promoted (NewHandoffGroup)

	mu      sync.Mutex
	next    *batch // waiters for the flush that has not started yet; owned by mu
	cur     *batch // the batch being flushed, nil when idle; owned by mu (tests: joined)
	running bool   // a leader is flushing; owned by mu

	flushes atomic.Uint64
	waits   atomic.Uint64 // Wait calls (Waits, for tests)
}

// batch is one group: the waiters covered by one flush.
type batch struct {
	done chan struct{} // closed after the flush returned; err is then set
	lead chan struct{} // one token: the member that receives it flushes
	err  error
	// members counts the Wait calls in the batch (its leader included);
	// owned by Group.mu (tests: joined).
	members int
}

// NewGroup returns a Group whose flushes call flush (for the engine,
// kv.Store.Flush).
func NewGroup(flush func() error) *Group {
	return &Group{flush: flush}
}

// NewHandoffGroup returns a Group like NewGroup's whose leader, once its
// flush has ended and it has promoted the next group's leader, yields the
// processor (runtime.Gosched) before it returns: the next flush starts
// before the leader goes on with its own work (replying to its client).
// Without the yield the promoted leader waited in the leader's run queue
// until the leader blocked, and every member of the next group waited
// with it. The engine's group flushes use it: durable commits at 8
// connections went from 10.1–10.9k/s to 12.2–12.9k/s (docs/PERFORMANCE.md,
// fourteenth session). Its apply runs do not: a yield there gained nothing.
func NewHandoffGroup(flush func() error) *Group {
	return &Group{flush: flush, handoff: true}
}

// Wait returns once a flush that started after Wait was called has
// finished, with that flush's error. A ctx already done when Wait is called
// returns ctx.Err() at once; once joined, Wait stays until its group's
// flush ends (a flush is one fsync, and a member may have to lead it).
// If the flush function panics while this Wait leads, Wait panics with the
// same value; the group's other members return ErrFlushPanicked.
func (g *Group) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.waits.Add(1)
	g.mu.Lock()
	if !g.running {
		g.running = true
		b := &batch{done: make(chan struct{}), members: 1}
		g.cur = b
		g.mu.Unlock()
		return g.lead(b)
	}
	b := g.next
	if b == nil {
		b = &batch{done: make(chan struct{}), lead: make(chan struct{}, 1)}
		g.next = b
	}
	b.members++
	g.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-b.lead:
		return g.lead(b)
	}
}

// lead flushes b (no waiter joins it any more), then promotes the next
// group, if any, or marks the Group idle.
//
// A panic in the flush function is not swallowed: b's other members get
// an error wrapping ErrFlushPanicked, the Group is handed on (or marked
// idle) as after any flush, and then the panic continues on the leader's
// goroutine with its original value. Whatever the flush function had
// open must be ended by its own defers (kv.Update aborts its transaction
// when its fn panics), so the next flush finds the store free.
func (g *Group) lead(b *batch) (err error) {
	finished := false
	defer func() {
		if finished {
			return
		}
		// The flush panicked or called runtime.Goexit: end b anyway.
		r := recover()
		b.err = fmt.Errorf("commit: flush panicked: %v: %w", r, ErrFlushPanicked)
		g.finish(b)
		if r != nil {
			panic(r)
		}
	}()
	b.err = g.flush()
	finished = true
	g.finish(b)
	return b.err
}

// finish wakes b's members and promotes the next group, if any, or marks
// the Group idle.
func (g *Group) finish(b *batch) {
	g.flushes.Add(1)
	close(b.done)
	g.mu.Lock()
	g.cur = g.next
	promoted := false
	if nb := g.next; nb != nil {
		g.next = nil
		nb.lead <- struct{}{} // buffered: exactly one member takes it
		promoted = true
	} else {
		g.running = false
	}
	g.mu.Unlock()
	if promoted && g.handoff {
		runtime.Gosched()
	}
}

// Flushes returns how many flushes the Group has run.
func (g *Group) Flushes() uint64 { return g.flushes.Load() }

// joined returns how many Wait calls are in a batch whose flush has not
// finished (running, or not started yet): waiters parked, not returning
// (tests).
func (g *Group) joined() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, b := range []*batch{g.cur, g.next} {
		if b != nil {
			n += b.members
		}
	}
	return n
}

// Waits returns how many Wait calls the Group has seen: tests of the
// packages above wait on it until their committers have piled up behind
// a flush.
func (g *Group) Waits() uint64 { return g.waits.Load() }
