//go:build bdb

package bdb

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
)

// A file written ahead that libdb's log passed by (a replica's internal
// init restarting its log at the master's file number, a rollback) is
// removed; none is written while an internal init runs.
func TestPrezeroDropsPassedFile(t *testing.T) {
	dir := t.TempDir()
	var cur atomic.Uint32
	cur.Store(1)
	stat := func() (uint32, uint32, error) { return cur.Load(), 1 << 20, nil }
	exists := func(n int) bool {
		_, err := os.Stat(filepath.Join(dir, fmt.Sprintf("log.%010d", n)))
		return err == nil
	}
	p := startPrezero(dir, stat, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer p.stop()
	testwait.Within(t, 10*time.Second, "log 2 written ahead", func() bool { return exists(2) })
	if !LogHeaderUnwritten(filepath.Join(dir, "log.0000000002")) {
		t.Fatal("log 2 is not zeros")
	}
	cur.Store(5) // the log restarted at file 5: log 2 is below it
	testwait.Within(t, 10*time.Second, "log 2 removed, log 6 written ahead", func() bool { return !exists(2) && exists(6) })

	if err := os.WriteFile(filepath.Join(dir, repInitFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cur.Store(9) // an internal init moved the log on, and runs
	testwait.Within(t, 10*time.Second, "log 6 removed", func() bool { return !exists(6) })
	time.Sleep(3 * prezeroEvery)
	if exists(10) {
		t.Fatal("a log file was written ahead during an internal init")
	}
	if err := os.Remove(filepath.Join(dir, repInitFile)); err != nil {
		t.Fatal(err)
	}
	testwait.Within(t, 10*time.Second, "log 10 written ahead after the internal init", func() bool { return exists(10) })
	if n := p.made.Load(); n != 3 {
		t.Fatalf("%d files written ahead, want 3", n)
	}
}

// A file written ahead whose name libdb's log passed while the zeros were
// being written (libdb switched into that number, on, and removed it with
// the logs a checkpoint freed: a fast import) is not left behind: below the
// log's first file it would be taken for a damaged log file at the next
// open. The look after the link catches it, with no later tick to wait for
// (the environment may close first).
func TestPrezeroLinkAfterLogPassed(t *testing.T) {
	dir := t.TempDir()
	p := &prezeroer{dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil)), quit: make(chan struct{}), done: make(chan struct{})}
	// libdb is at file 5 when the link is made: file 2 came and went.
	p.stat = func() (uint32, uint32, error) { return 5, 1 << 20, nil }
	if err := p.write(2, 1<<20, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "log.0000000002")); !os.IsNotExist(err) {
		t.Fatalf("log.0000000002 written ahead after libdb passed it is still there (%v)", err)
	}
	if n := p.made.Load(); n != 0 {
		t.Fatalf("%d files counted as written ahead, want 0", n)
	}
	// libdb still at file 1: the file written ahead for file 2 stays.
	p.stat = func() (uint32, uint32, error) { return 1, 1 << 20, nil }
	if err := p.write(2, 1<<20, 0o640); err != nil {
		t.Fatal(err)
	}
	if !LogHeaderUnwritten(filepath.Join(dir, "log.0000000002")) {
		t.Fatal("log.0000000002 written ahead is missing")
	}
}

// The same while the environment closes: Env.Close marks it closing before
// it stops the prezeroer, so libdb's log can no longer be asked where it
// is. A file written ahead that a written log file above it shows libdb
// passed by is still removed, after the link (a link made while Close
// waits for the write) and at the prezeroer's last look; one with no
// written log above it stays (libdb may still take it).
func TestPrezeroPassedWhileClosing(t *testing.T) {
	closing := func() (uint32, uint32, error) { return 0, 0, ErrClosed }
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// After the link.
	dir := t.TempDir()
	if err := os.WriteFile(logPath(dir, 7), logHeaderForTest(), 0o640); err != nil {
		t.Fatal(err)
	}
	p := &prezeroer{dir: dir, stat: closing, log: quiet, quit: make(chan struct{}), done: make(chan struct{})}
	if err := p.write(5, 1<<20, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(logPath(dir, 5)); !os.IsNotExist(err) {
		t.Fatalf("log.0000000005 linked below the written log.0000000007 while closing is still there (%v)", err)
	}
	if err := p.write(8, 1<<20, 0o640); err != nil {
		t.Fatal(err)
	}
	if !LogHeaderUnwritten(logPath(dir, 8)) {
		t.Fatal("log.0000000008, above every written log, was removed")
	}

	// At the last look.
	dir = t.TempDir()
	var cur atomic.Uint32
	cur.Store(4)
	stat := func() (uint32, uint32, error) {
		if c := cur.Load(); c != 0 {
			return c, 1 << 20, nil
		}
		return closing()
	}
	p = startPrezero(dir, stat, quiet)
	testwait.Within(t, 10*time.Second, "log 5 written ahead", func() bool { return p.made.Load() == 1 })
	// libdb switches into 5 (not taking it, as if it had passed it before
	// the link), on to 7, and a checkpoint removes 6; then Close begins.
	if err := os.WriteFile(logPath(dir, 7), logHeaderForTest(), 0o640); err != nil {
		t.Fatal(err)
	}
	cur.Store(0)
	p.stop()
	if _, err := os.Lstat(logPath(dir, 5)); !os.IsNotExist(err) {
		t.Fatalf("log.0000000005 below the written log.0000000007 survived the prezeroer's last look (%v)", err)
	}
}

// logHeaderForTest is the start of a written log file: not all zeros.
func logHeaderForTest() []byte {
	b := make([]byte, 4096)
	copy(b[12:], []byte{0x88, 0x09, 0x04, 0x00, 17})
	return b
}
