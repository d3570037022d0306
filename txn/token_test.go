package txn

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestTokenFIFO(t *testing.T) {
	tok := NewToken(time.Hour)
	ctx := context.Background()
	first, err := tok.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := tok.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			h.Release()
		}()
		// Wait until goroutine i is queued so the arrival order is known.
		deadline := time.Now().Add(5 * time.Second)
		for tok.Waiting() != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	first.Release()
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("grant order: got waiter %d, want %d", got, want)
		}
		want++
	}
	if want != n {
		t.Fatalf("%d grants, want %d", want, n)
	}
}

func TestTokenSeq(t *testing.T) {
	tok := NewToken(0)
	if tok.Lease() != DefaultLease {
		t.Fatalf("lease %v, want %v", tok.Lease(), DefaultLease)
	}
	ctx := context.Background()
	h, _ := tok.Acquire(ctx)
	if h.Seq() != 0 {
		t.Fatalf("seq %d", h.Seq())
	}
	if !h.Pin() {
		t.Fatal("pin failed")
	}
	h.Done(true)
	h.Done(true) // no effect after the end
	if tok.Seq() != 1 {
		t.Fatalf("seq %d, want 1", tok.Seq())
	}
	h, _ = tok.Acquire(ctx)
	h.Release()
	h.Release()
	if tok.Seq() != 1 {
		t.Fatalf("seq %d after release, want 1", tok.Seq())
	}
	h, _ = tok.Acquire(ctx)
	if h.Seq() != 1 {
		t.Fatalf("hold seq %d, want 1", h.Seq())
	}
	defer func() {
		if recover() == nil {
			t.Error("Done(true) on an unpinned hold did not panic")
		}
	}()
	h.Done(true)
}

func TestTokenLeaseRevocation(t *testing.T) {
	tok := NewToken(50 * time.Millisecond)
	ctx := context.Background()
	a, _ := tok.Acquire(ctx)
	// Nobody waits: no revocation, however long a holds.
	time.Sleep(80 * time.Millisecond)
	if a.Revoked() {
		t.Fatal("revoked without waiters")
	}
	start := time.Now()
	b, err := tok.Acquire(ctx) // waits, then a is revoked
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("waited %v for revocation", el)
	}
	if !a.Revoked() {
		t.Fatal("a not revoked")
	}
	if a.Pin() {
		t.Fatal("revoked hold pinned")
	}
	a.Release() // harmless
	if !b.Pin() {
		t.Fatal("b cannot pin")
	}
	b.Done(true)
	if tok.Revocations() != 1 {
		t.Fatalf("revocations %d", tok.Revocations())
	}
	// a re-acquires and sees that a commit was applied after its first grant.
	a2, _ := tok.Acquire(ctx)
	if a2.Seq() == a.Seq() {
		t.Fatal("sequence did not move")
	}
	a2.Release()
}

func TestTokenPinnedNotRevoked(t *testing.T) {
	tok := NewToken(20 * time.Millisecond)
	ctx := context.Background()
	a, _ := tok.Acquire(ctx)
	if !a.Pin() {
		t.Fatal("pin")
	}
	got := make(chan *Hold)
	go func() {
		b, _ := tok.Acquire(ctx)
		got <- b
	}()
	select {
	case <-got:
		t.Fatal("pinned hold was revoked")
	case <-time.After(150 * time.Millisecond):
	}
	if a.Revoked() {
		t.Fatal("pinned hold revoked")
	}
	a.Done(true)
	select {
	case b := <-got:
		b.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("waiter never granted")
	}
}

func TestTokenAcquireCancel(t *testing.T) {
	tok := NewToken(time.Hour)
	a, _ := tok.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := tok.Acquire(ctx); err == nil {
		t.Fatal("acquire did not fail on a cancelled context")
	}
	if tok.Waiting() != 0 {
		t.Fatalf("cancelled waiter still queued: %d", tok.Waiting())
	}
	a.Release()
	b, err := tok.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
}

func TestTokenMutualExclusion(t *testing.T) {
	tok := NewToken(time.Millisecond) // revocations happen constantly
	var mu sync.Mutex
	applying := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				h, err := tok.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if !h.Pin() {
					continue // revoked before pinning
				}
				mu.Lock()
				applying++
				if applying != 1 {
					t.Error("two pinned holders at once")
				}
				mu.Unlock()
				mu.Lock()
				applying--
				mu.Unlock()
				h.Done(true)
			}
		}()
	}
	wg.Wait()
	if tok.Seq() == 0 {
		t.Fatal("nothing applied")
	}
}
