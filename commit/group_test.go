package commit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
)

func TestGroupSingleWaiter(t *testing.T) {
	var n atomic.Int32
	g := NewGroup(func() error { n.Add(1); return nil })
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1 || g.Flushes() != 1 || g.Waits() != 1 {
		t.Fatalf("flush calls %d, Flushes %d, Waits %d; want 1,1,1", n.Load(), g.Flushes(), g.Waits())
	}
}

// gatedGroup returns a Group whose flush counts its calls, announces its
// start on started and then blocks until release yields.
func gatedGroup(started, release chan struct{}) (*Group, *atomic.Int32) {
	calls := new(atomic.Int32)
	return NewGroup(func() error {
		calls.Add(1)
		started <- struct{}{}
		<-release
		return nil
	}), calls
}

// TestGroupCoalesces: waiters arriving while a flush runs are all covered by
// one following flush, not one each.
func TestGroupCoalesces(t *testing.T) {
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	g, calls := gatedGroup(started, release)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.Wait(context.Background()) }()
	<-started // first flush running
	const n = 20
	var done atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		}()
	}
	// Wait until all n have joined the next batch.
	testwait.For(t, "waiters to join", func() bool { return g.Waits() >= n+1 })
	if done.Load() != 0 {
		t.Fatal("a waiter that arrived during a flush returned before the next flush")
	}
	release <- struct{}{} // end first flush
	<-started             // second flush starts, covering all n
	if done.Load() != 0 {
		t.Fatal("waiter returned before its flush ended")
	}
	close(release)
	wg.Wait()
	if c := calls.Load(); c != 2 {
		t.Fatalf("flush called %d times, want 2", c)
	}
}

// TestGroupErrorPropagates: every waiter of a group gets that group's error,
// and the next group starts clean.
func TestGroupErrorPropagates(t *testing.T) {
	boom := errors.New("disk on fire")
	var fail atomic.Bool
	fail.Store(true)
	gate := make(chan struct{})
	g := NewGroup(func() error {
		<-gate
		if fail.Load() {
			return boom
		}
		return nil
	})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = g.Wait(context.Background()) }()
	}
	testwait.For(t, "waiters to join", func() bool { return g.Waits() >= uint64(len(errs)) })
	close(gate)
	wg.Wait()
	bad := 0
	for _, err := range errs {
		if errors.Is(err, boom) {
			bad++
		} else if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
	}
	// The first flush may have started with only some waiters; those all fail.
	if bad == 0 {
		t.Fatal("no waiter saw the flush error")
	}
	fail.Store(false)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatalf("after a failed flush, a new group got %v", err)
	}
}

func TestGroupContextCancel(t *testing.T) {
	gate := make(chan struct{})
	g := NewGroup(func() error { <-gate; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	close(gate)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestGroupConcurrent: concurrent waiters share flushes. Each flush blocks
// until every goroutine still running is inside Wait, so waiters pile up
// behind it deterministically; with one flush per wait (no coalescing) the
// count would equal the number of waits.
func TestGroupConcurrent(t *testing.T) {
	const workers, rounds = 50, 20
	started := make(chan struct{})
	release := make(chan struct{})
	g, calls := gatedGroup(started, release)
	// Every live worker has joined a batch inside Wait (counting workers
	// that merely called Wait let a descheduled one miss the flush: under
	// load that left one waiter a flush).
	var mu sync.Mutex
	active := workers // owned by mu
	parked := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return g.joined() == active
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range rounds {
				err := g.Wait(context.Background())
				mu.Lock()
				if j == rounds-1 {
					active--
				}
				mu.Unlock()
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			waits, flushes := g.Waits(), uint64(calls.Load())
			t.Logf("%d waits, %d flushes", waits, flushes)
			if waits != workers*rounds || g.Flushes() != flushes {
				t.Fatalf("Waits %d, Flushes %d, flush calls %d; want %d waits", waits, g.Flushes(), flushes, workers*rounds)
			}
			// Every live worker is in Wait at each release, so each of
			// them finishes a wait within three flushes: about 2 flushes
			// a round are expected; a quarter of the waits is generous.
			if flushes > waits/4 {
				t.Fatalf("%d flushes for %d waits: concurrent waiters did not share flushes", flushes, waits)
			}
			return
		case <-started:
			testwait.For(t, "every live worker to be inside Wait", parked)
			release <- struct{}{}
		}
	}
}

// catchWait runs g.Wait and returns what it panicked with and its error.
func catchWait(g *Group) (p any, err error) {
	defer func() { p = recover() }()
	return nil, g.Wait(context.Background())
}

// TestGroupFlushPanic: a panicking flush is not swallowed: its leader's
// Wait panics with the flush's value, the group's other members get
// ErrFlushPanicked, and the Group stays usable.
func TestGroupFlushPanic(t *testing.T) {
	var boom atomic.Bool
	gate := make(chan struct{})
	started := make(chan struct{}, 1)
	var calls atomic.Int32
	g := NewGroup(func() error {
		if calls.Add(1) == 1 {
			started <- struct{}{}
			<-gate // the first flush holds the Group while the others join
			return nil
		}
		if boom.Load() {
			panic("libdb exploded")
		}
		return nil
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := g.Wait(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	<-started
	boom.Store(true)
	const n = 6
	errs := make([]error, n)
	panics := make([]any, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); panics[i], errs[i] = catchWait(g) }()
	}
	testwait.For(t, "waiters to join", func() bool { return g.Waits() >= n+1 })
	close(gate) // the next group's leader flushes and panics
	wg.Wait()
	leaders, failed := 0, 0
	for i := range n {
		switch {
		case panics[i] != nil:
			if panics[i] != "libdb exploded" || errs[i] != nil {
				t.Fatalf("waiter %d: panic %v, err %v", i, panics[i], errs[i])
			}
			leaders++
		case errors.Is(errs[i], ErrFlushPanicked):
			failed++
		default:
			t.Fatalf("waiter %d of the panicking group returned %v", i, errs[i])
		}
	}
	if leaders != 1 || failed != n-1 {
		t.Fatalf("%d leaders panicked and %d members failed; want 1 and %d", leaders, failed, n-1)
	}
	// A panicking leader alone (no other member) also panics, and the
	// Group is idle again afterwards.
	if p, err := catchWait(g); p != "libdb exploded" {
		t.Fatalf("lone leader: panic %v, err %v", p, err)
	}
	boom.Store(false)
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after a panicking flush: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the Group deadlocked after a panicking flush")
	}
}

// leaderOrder runs trials with one P: a leader's flush ends while one
// waiter has joined the next group; it returns in how many trials the
// next flush started before the leader's Wait returned.
func leaderOrder(t *testing.T, trials int, newGroup func(func() error) *Group) int {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	next := 0
	for range trials {
		started := make(chan struct{}, 1)
		release := make(chan struct{})
		order := make(chan string, 2)
		var calls atomic.Int32
		g := newGroup(func() error {
			if calls.Add(1) == 1 {
				started <- struct{}{}
				<-release
			} else {
				order <- "next flush"
			}
			return nil
		})
		go func() {
			g.Wait(context.Background())
			order <- "leader returned"
		}()
		<-started
		done := make(chan struct{})
		go func() { defer close(done); g.Wait(context.Background()) }()
		for g.joined() != 2 {
			runtime.Gosched()
		}
		close(release)
		if <-order == "next flush" {
			next++
		}
		<-order
		<-done
	}
	return next
}

// TestHandoffGroupYieldsToNextLeader: a NewHandoffGroup leader lets the
// leader it promoted start the next flush before its own Wait returns (the
// next group's members all wait for that flush); a NewGroup leader goes
// on first. With one P the order is observable; the scheduler looks at its
// global queue first once in 61 ticks, so a majority decides.
func TestHandoffGroupYieldsToNextLeader(t *testing.T) {
	const trials = 20
	if n := leaderOrder(t, trials, NewHandoffGroup); n <= trials/2 {
		t.Errorf("NewHandoffGroup: the next flush started first in %d of %d trials; want most", n, trials)
	}
	if n := leaderOrder(t, trials, NewGroup); n > trials/2 {
		t.Errorf("NewGroup: the next flush started first in %d of %d trials; want the leader to return first", n, trials)
	}
}

// BenchmarkGroupHandoff: 8 goroutines wait for group flushes of 100 µs (a
// sleep, as an fsync leaves the CPU) and then work 20 µs each (replying
// to a client), with NewGroup and NewHandoffGroup. Reports waits per
// second: how soon a promoted leader starts the next flush.
func BenchmarkGroupHandoff(b *testing.B) {
	for _, bc := range []struct {
		name string
		new  func(func() error) *Group
	}{{"NewGroup", NewGroup}, {"NewHandoffGroup", NewHandoffGroup}} {
		b.Run(bc.name, func(b *testing.B) {
			g := bc.new(func() error { time.Sleep(100 * time.Microsecond); return nil })
			benchWorkers(b, "waits/s", func() {
				g.Wait(context.Background())
				spin(20 * time.Microsecond)
			})
		})
	}
}
