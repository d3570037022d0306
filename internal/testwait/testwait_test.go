package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestForReturnsOnceTrue(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	For(t, "three increments", func() bool { return n.Load() == 3 })
	if n.Load() != 3 {
		t.Fatalf("For returned with %d", n.Load())
	}
}

func TestPollGivesUp(t *testing.T) {
	calls := 0
	if Poll(20*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("poll of a false condition reported success")
	}
	if calls < 2 {
		t.Fatalf("condition polled %d times", calls)
	}
}
