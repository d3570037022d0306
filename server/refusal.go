package server

import (
	"log/slog"
	"sync"
	"time"
)

// refusalLog writes the warning for a refused connection at most once a
// second, counting the ones it leaves out: a flood of connections must not
// become a flood of log lines (a disk filled through the log). The
// observer (metrics) still counts every refusal.
type refusalLog struct {
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// warn logs msg with args, or only counts it when a line went out less
// than a second ago; the next line says how many went unlogged.
func (r *refusalLog) warn(log *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < time.Second {
		r.skipped++
		r.mu.Unlock()
		return
	}
	skipped := r.skipped
	r.last, r.skipped = now, 0
	r.mu.Unlock()
	if skipped > 0 {
		args = append(args, "unlogged_refusals", skipped)
	}
	log.Warn(msg, args...)
}
