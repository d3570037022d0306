// Package progress reports the progress of long operations (migrate,
// export, copy, check, backup, full collection): a one-line bar with rate
// and ETA redrawn on a terminal, or a log line every few seconds when the
// output is not a terminal (CI logs, systemd journals).
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Reporter receives counts from the operation and draws them. Safe for
// concurrent use; call Done exactly once at the end.
type Reporter struct {
	mu       sync.Mutex
	what     string
	unit     string // "records", "bytes"...
	total    int64  // 0 = unknown
	done     int64
	extra    int64 // secondary count (e.g. bytes while counting records)
	start    time.Time
	last     time.Time
	every    time.Duration
	w        io.Writer
	terminal bool
	log      *slog.Logger
	now      func() time.Time
}

// New returns a Reporter writing to w (a terminal gets a redrawn bar) or, if
// w is not a terminal, logging through log every interval (default 5 s).
func New(w io.Writer, log *slog.Logger, what, unit string, total int64) *Reporter {
	if log == nil {
		log = slog.Default()
	}
	r := &Reporter{what: what, unit: unit, total: total, w: w, log: log, now: time.Now, every: 5 * time.Second}
	r.terminal = IsTerminal(w)
	if r.terminal {
		r.every = 200 * time.Millisecond
	}
	r.start = r.now()
	r.last = r.start
	return r
}

// Add advances the count by n (and the secondary count by extra).
func (r *Reporter) Add(n, extra int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	r.extra += extra
	if t := r.now(); t.Sub(r.last) >= r.every {
		r.last = t
		r.draw(false)
	}
}

// Done draws the final state.
func (r *Reporter) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draw(true)
}

// Line formats the current state as one line (without newline).
func (r *Reporter) line() string {
	el := r.now().Sub(r.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(r.done) / s
	}
	s := fmt.Sprintf("%s: %d %s", r.what, r.done, r.unit)
	if r.total > 0 {
		pct := 100 * float64(r.done) / float64(r.total)
		s = fmt.Sprintf("%s: %s %5.1f%% %d/%d %s", r.what, bar(pct), pct, r.done, r.total, r.unit)
	}
	s += fmt.Sprintf(", %.0f %s/s", rate, r.unit)
	if r.extra > 0 {
		s += fmt.Sprintf(", %.1f MB (%.1f MB/s)", float64(r.extra)/1e6, float64(r.extra)/1e6/max(el.Seconds(), 1e-9))
	}
	if r.total > 0 && rate > 0 && r.done < r.total {
		eta := time.Duration(float64(r.total-r.done) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s + ", " + el.Round(100*time.Millisecond).String()
}

func (r *Reporter) draw(final bool) {
	if r.terminal {
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(r.w, "\r\x1b[K%s%s", r.line(), end)
		return
	}
	r.log.Info(r.line(), "final", final)
}

func bar(pct float64) string {
	const width = 20
	n := int(pct / 100 * width)
	n = min(max(n, 0), width)
	b := make([]byte, width+2)
	b[0], b[width+1] = '[', ']'
	for i := 1; i <= width; i++ {
		if i <= n {
			b[i] = '#'
		} else {
			b[i] = '.'
		}
	}
	return string(b)
}

// IsTerminal reports whether w is a character device (a tty): where a
// redrawn bar belongs (check shows progress only there unless asked).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
