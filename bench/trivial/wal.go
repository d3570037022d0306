package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/durusbdb/durusbdb/commit"
	"golang.org/x/sys/unix"
)

// wal is the durable trivial server's log: a file written with zeros
// ahead of time (so that an fdatasync never changes its size or extents,
// as durusbdb's log files are written ahead), reused as a ring, behind
// the group commit durusbdb's engine uses (commit.NewHandoffGroup). A
// committer appends its data under the token, releases the token, then
// waits in sync for one write + fdatasync that covers it: whoever finds
// no flush running leads one for everything appended so far; the others
// wait and one of them leads the next. That is the least a durable Durus
// server does per commit, so the difference between this server and
// durusbdb's durable commits is the storage engine alone.
type wal struct {
	f     *os.File
	size  int64
	group *commit.Group

	mu      sync.Mutex
	pending []byte // appended since the last flush began
	off     int64  // where the next flush writes; owned by the flush's leader
}

// openWAL creates path (replacing it) with size bytes of zeros written
// and synced.
func openWAL(path string, size int64) (*wal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, min(size, 1<<20))
	for off := int64(0); off < size; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off); err != nil {
			f.Close()
			return nil, fmt.Errorf("trivial: write %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("trivial: sync %s: %w", path, err)
	}
	w := &wal{f: f, size: size}
	w.group = commit.NewHandoffGroup(w.flush)
	return w, nil
}

// append adds one commit's data to the next flush.
func (w *wal) append(data []byte) {
	w.mu.Lock()
	w.pending = append(w.pending, data...)
	w.mu.Unlock()
}

// sync returns once everything appended before it is on disk.
func (w *wal) sync() error {
	return w.group.Wait(context.Background())
}

// flush writes what was appended and syncs it (the group's leader only).
func (w *wal) flush() error {
	w.mu.Lock()
	buf := w.pending
	w.pending = nil
	w.mu.Unlock()
	if w.off+int64(len(buf)) > w.size {
		w.off = 0
	}
	if _, err := w.f.WriteAt(buf, w.off); err != nil {
		return fmt.Errorf("trivial: write log: %w", err)
	}
	w.off += int64(len(buf))
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("trivial: sync log: %w", err)
	}
	return nil
}
