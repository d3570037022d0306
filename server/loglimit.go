package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// A connection's lines (opened, closed, refusals, protocol errors) are
// logged in a burst of connLogBurst lines, then connLogRate a second, over
// all connections; errors always are.
const (
	connLogBurst = 512
	connLogRate  = 128
)

// lineBudget bounds the lines connections log: a client opening and
// closing connections in a loop (7,000 a second from one Python process)
// wrote 1.6 MB of log a second, enough to fill a disk in hours, and one
// sending a bad byte on each would do the same with warnings. The lines
// beyond the budget are counted, and reported in one line at most once a
// second.
type lineBudget struct {
	mu       sync.Mutex
	tokens   float64
	last     time.Time
	skipped  int
	reported time.Time
}

// allow reports whether one more line may be logged; it logs to log the
// count of lines left out, once a second and before the next logged one.
func (b *lineBudget) allow(log *slog.Logger) bool {
	b.mu.Lock()
	now := time.Now()
	if b.last.IsZero() {
		b.tokens = connLogBurst
	} else {
		b.tokens = min(connLogBurst, b.tokens+now.Sub(b.last).Seconds()*connLogRate)
	}
	b.last = now
	ok := b.tokens >= 1
	if ok {
		b.tokens--
	} else {
		b.skipped++
	}
	var report int
	if b.skipped > 0 && (ok || now.Sub(b.reported) >= time.Second) {
		report, b.skipped, b.reported = b.skipped, 0, now
	}
	b.mu.Unlock()
	if report > 0 {
		log.Warn("connection log lines left out (a flood of connections or bad requests?)", "lines", report, "burst", connLogBurst, "per_second", connLogRate)
	}
	return ok
}

// budgetHandler passes the Info and Warn lines of connections to the
// server's handler within the shared budget; errors always pass.
type budgetHandler struct {
	slog.Handler
	b       *lineBudget
	summary *slog.Logger // the server's logger: where the count goes
}

// Handle writes r if it is an error or the budget allows it.
func (h *budgetHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && !h.b.allow(h.summary) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the budget.
func (h *budgetHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &budgetHandler{Handler: h.Handler.WithAttrs(as), b: h.b, summary: h.summary}
}

// WithGroup keeps the budget.
func (h *budgetHandler) WithGroup(name string) slog.Handler {
	return &budgetHandler{Handler: h.Handler.WithGroup(name), b: h.b, summary: h.summary}
}
