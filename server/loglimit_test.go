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

// TestConnectionFloodLogsBounded: a client opening and closing connections
// in a loop, or sending a bad byte on each, gets the lines of a burst
// logged, then a bounded rate; the rest are counted in a summary line,
// not written one by one.
func TestConnectionFloodLogsBounded(t *testing.T) {
	for _, bad := range []bool{false, true} {
		ts := startServer(t, Config{}, newMemStore())
		const flood = 2000
		start := time.Now()
		for range flood {
			c := ts.dialRaw(t)
			if bad {
				c.send([]byte{0xFF})
				c.expectClosed(10 * time.Second)
			}
			c.nc.Close()
		}
		elapsed := time.Since(start)
		waitFor(t, 10*time.Second, "every connection closed", func() bool { return ts.srv.NumConns() == 0 })
		logs := ts.logs.String()
		lines := strings.Count(logs, "conn=")
		if max := connLogBurst + int(elapsed.Seconds()*connLogRate) + connLogRate; lines > max {
			t.Fatalf("bad byte %v: %d connections in %v logged %d lines, want at most %d", bad, flood, elapsed, lines, max)
		}
		if !strings.Contains(logs, "connection log lines left out") {
			t.Fatalf("bad byte %v: no summary of the lines left out", bad)
		}
	}
}
