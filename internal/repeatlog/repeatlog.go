// Package repeatlog logs the failure of a background loop that retries at
// every tick (a checkpointer, a collector) without flooding the log: the
// first failure, then one line a minute while it lasts, and the return to
// success once. A loop ticking five times a second on a full disk wrote
// five error lines a second before.
package repeatlog

import (
	"log/slog"
	"time"
)

// DefaultEvery is how often a failure that lasts is logged again.
const DefaultEvery = time.Minute

// Failure is the state of one loop's failures. Not safe for concurrent
// use: one loop owns it. The zero value with Log and Msg set is ready.
type Failure struct {
	Log   *slog.Logger
	Msg   string        // the error line's message
	Every time.Duration // 0: DefaultEvery

	failing  int       // failures in a row
	reported time.Time // when the last of them was logged
}

// Note records the outcome of one try: err nil is a success. args are
// the error line's attributes beside err and failures_in_a_row.
func (f *Failure) Note(err error, args ...any) {
	every := f.Every
	if every <= 0 {
		every = DefaultEvery
	}
	switch {
	case err != nil && (f.failing == 0 || time.Since(f.reported) >= every):
		f.failing++
		f.reported = time.Now()
		f.Log.Error(f.Msg, append(args, "err", err, "failures_in_a_row", f.failing)...)
	case err != nil:
		f.failing++
	case f.failing > 0:
		f.Log.Info(f.Msg+": works again", append(args, "failures", f.failing)...)
		f.failing = 0
	}
}
