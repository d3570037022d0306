package gen

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestSlowKept: a counted request slower than Spec.Slow is kept with its
// start time and duration; faster ones are not.
func TestSlowKept(t *testing.T) {
	r := &run{slow: 20 * time.Millisecond}
	r.measuring.Store(true)
	n := 0
	var slowStart time.Time
	w := func(c *wire.Conn, rng *rand.Rand) (int64, error) {
		n++
		switch n {
		case 2:
			slowStart = time.Now()
			time.Sleep(30 * time.Millisecond)
		case 4:
			r.stop.Store(true)
		}
		return 1, nil
	}
	r.work(0, nil, w)
	if r.res.Ops != 4 {
		t.Fatalf("ops %d, want 4", r.res.Ops)
	}
	if len(r.res.Slow) != 1 {
		t.Fatalf("slow requests %v, want the second one only", r.res.Slow)
	}
	s := r.res.Slow[0]
	if s.Took < 30*time.Millisecond || s.Start.After(slowStart) || slowStart.Sub(s.Start) > 5*time.Millisecond {
		t.Fatalf("slow request %+v, want start at %v and at least 30ms", s, slowStart)
	}
}
