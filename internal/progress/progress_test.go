package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLogLines(t *testing.T) {
	var logs bytes.Buffer
	clock := time.Unix(0, 0)
	r := New(&bytes.Buffer{}, slog.New(slog.NewTextHandler(&logs, nil)), "migrate", "records", 100)
	r.now = func() time.Time { return clock }
	r.start, r.last = clock, clock
	clock = clock.Add(6 * time.Second)
	r.Add(50, 1e6)
	clock = clock.Add(1 * time.Second)
	r.Add(10, 0) // under the interval: no line
	r.Done()
	out := logs.String()
	if n := strings.Count(out, "migrate:"); n != 2 {
		t.Fatalf("want 2 log lines, got %d:\n%s", n, out)
	}
	if !strings.Contains(out, "50/100 records") || !strings.Contains(out, "ETA") || !strings.Contains(out, "60/100") {
		t.Fatalf("missing fields:\n%s", out)
	}
}
