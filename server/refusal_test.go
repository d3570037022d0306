package server

import (
	"strings"
	"testing"
	"time"
)

// TestRefusalFloodLogsBounded: a flood of connections beyond
// MaxConnections is refused one by one, but logged at most once a second
// (a line then says how many went unlogged), so the flood cannot fill the
// disk through the log; the observer still counts every refusal.
func TestRefusalFloodLogsBounded(t *testing.T) {
	obs := newRecObserver()
	ts := startServer(t, Config{MaxConnections: 1, Observer: obs}, newMemStore())
	ts.dial(t)
	const flood = 300
	start := time.Now()
	for range flood {
		c := ts.dialRaw(t)
		c.expectClosed(10 * time.Second)
		c.nc.Close()
	}
	elapsed := time.Since(start)
	waitFor(t, 10*time.Second, "every refusal counted", func() bool { return obs.errorCount(ErrMaxConnections) == flood })
	lines := strings.Count(ts.logs.String(), "connection refused: too many connections")
	if max := int(elapsed/time.Second) + 2; lines > max {
		t.Fatalf("%d refusals in %v logged %d lines, want at most %d", flood, elapsed, lines, max)
	}
	if lines == 0 {
		t.Fatal("no refusal logged")
	}
}
