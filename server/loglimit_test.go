package server

import (
	"strings"
	"testing"
	"time"
)

// TestConnectionFloodLogsBounded: a client opening and closing connections
// in a loop, sending a bad byte on each, or opening them beyond
// MaxConnections, gets the lines of a burst logged, then a bounded rate;
// the rest are counted in a summary line, not written one by one (the
// observer still counts every refusal).
func TestConnectionFloodLogsBounded(t *testing.T) {
	for _, how := range []string{"connect and close", "bad byte", "refused"} {
		obs := newRecObserver()
		cfg := Config{Observer: obs}
		if how == "refused" {
			cfg.MaxConnections = 1
		}
		ts := startServer(t, cfg, newMemStore())
		if how == "refused" {
			ts.dial(t)
		}
		const flood = 2000
		start := time.Now()
		for range flood {
			c := ts.dialRaw(t)
			switch how {
			case "bad byte":
				c.send([]byte{0xFF})
				c.expectClosed(10 * time.Second)
			case "refused":
				c.expectClosed(10 * time.Second)
			}
			c.nc.Close()
		}
		elapsed := time.Since(start)
		if how == "refused" {
			waitFor(t, 10*time.Second, "every refusal counted", func() bool { return obs.errorCount(ErrMaxConnections) == flood })
		} else {
			waitFor(t, 10*time.Second, "every connection closed", func() bool { return ts.srv.NumConns() == 0 })
		}
		logs := ts.logs.String()
		lines := strings.Count(logs, "conn=") + strings.Count(logs, "connection refused")
		if max := connLogBurst + int(elapsed.Seconds()*connLogRate) + connLogRate; lines > max {
			t.Fatalf("%s: %d connections in %v logged %d lines, want at most %d", how, flood, elapsed, lines, max)
		}
		if !strings.Contains(logs, "connection log lines left out") {
			t.Fatalf("%s: no summary of the lines left out", how)
		}
	}
}
