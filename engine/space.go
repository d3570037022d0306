package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// DefaultMinFreeSpace is the free space a commit must leave on the
// database's file system when Options.MinFreeSpace is 0.
const DefaultMinFreeSpace = 64 << 20

// spaceGuard refuses commits that would bring the file system holding the
// database below a reserve. Berkeley DB cannot be allowed to meet a truly
// full disk: its region files are sparse memory-mapped files, and touching
// an unbacked page kills the process with SIGBUS; LevelDB's log writer is
// left unusable by a failed append. So commits are refused with
// kv.ErrNoSpace while the reserve is still there (the server answers E),
// and accepted again as soon as space is freed. It cannot protect against
// another process filling the disk between two checks.
type spaceGuard struct {
	dir     string
	reserve int64 // bytes to keep free; <0 disables the guard
	log     *slog.Logger
	// f is dir held open from newSpaceGuard to close, so admit asks
	// fstatfs and does not convert the path (an allocation) per commit.
	// nil when dir could not be opened: admit then uses the path.
	f *os.File
	// recent, when set (newSpaceGuard), lets admit answer from a statfs
	// taken less than spaceRecheck ago: a statfs per commit was one
	// syscall inside the commit token for every commit (issue #18).
	recent *spaceRecent
}

// spaceRecheck bounds how old the statfs an admission relies on may be:
// a read-only remount, or space taken by another process, is seen at most
// this late (the write itself still fails on either, as it always could
// between a check and the write).
const spaceRecheck = 5 * time.Millisecond

// spaceRecent is the last statfs of a guard and what has been admitted
// against it since: the bytes admitted (each counted at the guard's
// safety factor) come off the free space it saw, so a burst of commits
// cannot spend past the reserve between two statfs calls.
type spaceRecent struct {
	mu     sync.Mutex
	at     time.Time // zero: no statfs yet
	free   int64     // bytes available to us at that time
	ro     bool      // mounted read-only at that time
	spent  int64     // admitted since, times the safety factor
	inodes int64     // free inodes at that time; -1: not reported
	gone   bool      // the directory was removed (for good: see removed)
	calls  uint64    // statfs calls (tests)
	// stat replaces the guard's statfs in tests; nil in production.
	stat func(*syscall.Statfs_t) error
}

// newSpaceGuard returns the guard for dir with the directory held open.
// Failing to open it is not an error: admit falls back to the path.
func newSpaceGuard(dir string, reserve int64, log *slog.Logger) spaceGuard {
	g := spaceGuard{dir: dir, reserve: reserve, log: log, recent: &spaceRecent{}}
	if f, err := os.Open(dir); err == nil {
		g.f = f
	}
	return g
}

// close releases the directory held open; admit then uses the path
// (fstatfs on the closed file fails). It runs when the DB is closed or
// fails to open. g.f itself is not cleared, so a Stage racing Close
// reads nothing that close writes.
func (g *spaceGuard) close() {
	if g.f != nil {
		g.f.Close()
	}
}

// statfs fills st for the guard's file system: through the held
// directory when there is one and it is still open, else by path.
func (g *spaceGuard) statfs(st *syscall.Statfs_t) error {
	if g.f != nil && syscall.Fstatfs(int(g.f.Fd()), st) == nil {
		return nil
	}
	return syscall.Statfs(g.dir, st)
}

// statfsLocked returns the statfs to call: the tests' stat when set, else
// statfs. g.recent.mu is held.
func (g *spaceGuard) statfsLocked() func(*syscall.Statfs_t) error {
	if g.recent.stat != nil {
		return g.recent.stat
	}
	return g.statfs
}

// freeNow returns the bytes free to us on the guard's file system now (a
// statfs of its own, through the tests' stat when set).
func (g *spaceGuard) freeNow() (int64, error) {
	stat := g.statfs
	if g.recent != nil {
		g.recent.mu.Lock()
		stat = g.statfsLocked()
		g.recent.mu.Unlock()
	}
	var st syscall.Statfs_t
	if err := stat(&st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// stReadOnly is ST_RDONLY in statfs's f_flags: the file system is mounted
// read-only.
const stReadOnly = 0x1

// admit returns an error wrapping ErrDirRemoved once the directory has
// been removed (for good), one wrapping kv.ErrReadOnly when the file
// system is mounted read-only (a remount after I/O errors, say: nothing is
// applied, so nothing visible is lost when the log cannot be written), and
// one wrapping kv.ErrNoSpace when writing about n bytes (times a safety
// factor for logs, pages and indexes) would leave less than the reserve
// free, or fewer than MinFreeInodes inodes are free. It runs for every
// commit when it is staged (commit.go), before the commit is announced, so
// a refusal has no side effects. A negative reserve disables the space and
// inode checks, not the others.
func (g *spaceGuard) admit(n int64) error {
	if g.recent == nil {
		if g.removed() {
			return g.dirRemoved()
		}
		var st syscall.Statfs_t
		if err := g.statfs(&st); err != nil {
			return nil // cannot tell: let the write itself report
		}
		return g.decide(st.Flags&stReadOnly != 0, int64(st.Bavail)*int64(st.Bsize), FreeInodes(&st), n)
	}
	r := g.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return g.dirRemoved()
	}
	now := time.Now()
	need := spaceFactor * n
	if r.at.IsZero() || now.Sub(r.at) >= spaceRecheck ||
		(g.reserve >= 0 && (r.free-r.spent-need < g.reserve || r.inodes >= 0 && r.inodes < MinFreeInodes)) {
		var st syscall.Statfs_t
		stat := g.statfsLocked()
		r.calls++
		if err := stat(&st); err != nil {
			r.at = time.Time{}
			return nil // cannot tell: let the write itself report
		}
		r.at, r.free, r.ro, r.spent = now, int64(st.Bavail)*int64(st.Bsize), st.Flags&stReadOnly != 0, 0
		r.inodes = FreeInodes(&st)
		if g.removed() {
			r.gone = true
			g.log.Error("engine: the database directory was removed while open: commits are refused, loads go on. Its files live on, unlinked, until this process ends: to keep what they hold, copy them now from /proc/PID/fd (ls -l shows them as \"(deleted)\"; data files before log files) into a new directory, run durusbdb recover on it, then stop this server",
				"dir", g.dir, "pid", os.Getpid(), "fds", fmt.Sprintf("/proc/%d/fd", os.Getpid()))
			return g.dirRemoved()
		}
	}
	if err := g.decide(r.ro, r.free-r.spent, r.inodes, n); err != nil {
		return err
	}
	r.spent += need
	return nil
}

// ErrDirRemoved marks a commit refused because the database directory was
// removed (rm -rf) while the database was open: its files live on,
// unlinked, until the process ends, and anything written to them is lost
// then.
var ErrDirRemoved = errors.New("engine: the database directory was removed while open")

// removed reports whether the directory held open was removed: it has no
// links left. A directory moved elsewhere keeps its links, and its files
// are written as before.
func (g *spaceGuard) removed() bool {
	if g.f == nil {
		return false
	}
	var st syscall.Stat_t
	if syscall.Fstat(int(g.f.Fd()), &st) != nil {
		return false
	}
	return st.Nlink == 0
}

// dirRemoved is the refusal of a commit into a removed directory.
func (g *spaceGuard) dirRemoved() error {
	return fmt.Errorf("%w: %s (process %d holds its files until it ends: /proc/%d/fd)", ErrDirRemoved, g.dir, os.Getpid(), os.Getpid())
}

// spaceFactor is the safety factor of admit: a commit of n bytes may cost
// about 4n on disk (log records, pages, indexes).
const spaceFactor = 4

// MinFreeInodes is the free inodes below which commits are refused: the
// storage creates files as it goes (Berkeley DB's next log file, LevelDB's
// tables), and a file system out of inodes fails that with ENOSPC however
// many bytes are free.
const MinFreeInodes = 64

// FreeInodes returns the free inodes statfs reported, or -1 for a file
// system that reports none (f_files 0, as btrfs).
func FreeInodes(st *syscall.Statfs_t) int64 {
	if st.Files == 0 {
		return -1
	}
	return int64(st.Ffree)
}

// decide is admit's verdict for a commit of n bytes on a file system
// seen read-only or not, with free bytes and inodes (-1: not reported)
// available.
func (g *spaceGuard) decide(ro bool, free, inodes, n int64) error {
	if ro {
		return fmt.Errorf("engine: %s: the file system is mounted read-only: %w", g.dir, kv.ErrReadOnly)
	}
	if g.reserve < 0 {
		return nil
	}
	if inodes >= 0 && inodes < MinFreeInodes {
		return fmt.Errorf("engine: %s: %d inodes free (df -i), and the storage creates files as it goes (log files, tables): commits are refused until some are freed: %w",
			g.dir, inodes, kv.ErrNoSpace)
	}
	if need := spaceFactor*n + g.reserve; free < need {
		return fmt.Errorf("engine: %s: %d bytes free, a commit of %d bytes needs %d (free space reserve %d: serve --min-free-space): %w",
			g.dir, free, n, need, g.reserve, kv.ErrNoSpace)
	}
	return nil
}
