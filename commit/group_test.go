package commit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// TestGroupCoalesces: waiters arriving while a flush runs are all covered by
// one following flush, not one each.
func TestGroupCoalesces(t *testing.T) {
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	var calls atomic.Int32
	g := NewGroup(func() error {
		calls.Add(1)
		started <- struct{}{}
		<-release
		return nil
	})
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
	deadline := time.Now().Add(5 * time.Second)
	for g.Waits() < n+1 {
		if time.Now().After(deadline) {
			t.Fatal("waiters did not join")
		}
		time.Sleep(time.Millisecond)
	}
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
	deadline := time.Now().Add(5 * time.Second)
	for g.Waits() < uint64(len(errs)) {
		if time.Now().After(deadline) {
			t.Fatal("waiters did not join")
		}
		time.Sleep(time.Millisecond)
	}
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

func TestGroupConcurrent(t *testing.T) {
	var calls atomic.Int32
	g := NewGroup(func() error { calls.Add(1); time.Sleep(200 * time.Microsecond); return nil })
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if err := g.Wait(context.Background()); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if c := calls.Load(); c <= 0 || c > 1000 {
		t.Fatalf("flush calls %d", c)
	}
	t.Logf("1000 waits, %d flushes", calls.Load())
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
	deadline := time.Now().Add(5 * time.Second)
	for g.Waits() < n+1 {
		if time.Now().After(deadline) {
			t.Fatal("waiters did not join")
		}
		time.Sleep(time.Millisecond)
	}
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
