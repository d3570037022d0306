package engine

import (
	"fmt"
	"os"
	"syscall"

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
	// f is dir held open from newSpaceGuard to close, so admit asks
	// fstatfs and does not convert the path (an allocation) per commit.
	// nil when dir could not be opened: admit then uses the path.
	f *os.File
}

// newSpaceGuard returns the guard for dir with the directory held open.
// Failing to open it is not an error: admit falls back to the path.
func newSpaceGuard(dir string, reserve int64) spaceGuard {
	g := spaceGuard{dir: dir, reserve: reserve}
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

// stReadOnly is ST_RDONLY in statfs's f_flags: the file system is mounted
// read-only.
const stReadOnly = 0x1

// admit returns an error wrapping kv.ErrReadOnly when the file system is
// mounted read-only (a remount after I/O errors, say: nothing is applied, so
// nothing visible is lost when the log cannot be written), and one
// wrapping kv.ErrNoSpace when writing about n bytes
// (times a safety factor for logs, pages and indexes) would leave less than
// the reserve free. It runs for every commit when it is staged
// (commit.go), before the commit is announced, so a refusal has no side
// effects. A
// negative reserve disables the space check, not the read-only one.
func (g *spaceGuard) admit(n int64) error {
	var st syscall.Statfs_t
	if err := g.statfs(&st); err != nil {
		return nil // cannot tell: let the write itself report
	}
	if st.Flags&stReadOnly != 0 {
		return fmt.Errorf("engine: %s: the file system is mounted read-only: %w", g.dir, kv.ErrReadOnly)
	}
	if g.reserve < 0 {
		return nil
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if need := 4*n + g.reserve; free < need {
		return fmt.Errorf("engine: %s: %d bytes free, a commit of %d bytes needs %d (free space reserve %d: serve --min-free-space): %w",
			g.dir, free, n, need, g.reserve, kv.ErrNoSpace)
	}
	return nil
}
