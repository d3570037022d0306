//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

// prezeroer keeps the next log file of a writable environment written
// with zeros before libdb switches to it, so that a commit's fdatasync
// never allocates blocks.
//
// libdb extends a new log file sparsely (__db_file_extend sets its size,
// writes no block), so every fdatasync that reaches a new block of the
// log also commits that block's allocation to the filesystem's journal:
// on this project's ext4 machines the fsync of a durable commit took
// 197–216 µs, 158–170 µs with the blocks written beforehand
// (DB_LOG_ZERO, docs/PERFORMANCE.md "Seventh session"). DB_LOG_ZERO
// writes the zeros itself, at the switch, under the log's lock: a 10 MB
// stall on the commit path at every switch (max latency 20–26 ms).
// prezeroer writes them ahead, off that path, into a dotfile it then
// links to the next log file's name (link, not rename: it fails if libdb
// created the file meanwhile).
//
// Why libdb takes the file: at the switch it opens the next log file
// with DB_OSO_CREATE and without DB_OSO_TRUNC (__log_newfh), and it
// accepts a file whose header is all zeros (DB_LV_INCOMPLETE, which
// __log_valid returns for a log file created but never written); its
// recovery ignores such a last file (__log_find), as after a crash in
// the middle of a switch. On a replication site libdb may move its log
// without taking the file (an internal init restarts a replica's log at
// the master's file number; a rollback truncates it), and a fast writer
// (an import) may switch into the file's number, on past it and remove it
// with the logs a checkpoint freed while the zeros are being written: a
// file written ahead that libdb passed by is removed at once after the
// link, at the next look and when the environment closes (once Close
// has begun libdb can no longer be asked where its log is: a written log
// file above it says so), and one left anyway at the next writable open
// (StrayLogs; the directory's checks accept it meanwhile); none is
// written while an internal init runs.
type prezeroer struct {
	dir  string
	stat func() (cur, size uint32, err error) // current log file and its size
	log  *slog.Logger
	quit chan struct{}
	done chan struct{}
	made atomic.Uint64 // log files written ahead
	// full is the error of the last attempt to write the next log file
	// ahead when the file system had no room for it, nil once a later
	// attempt succeeds or libdb has its next file: while set, Env.RoomFor
	// refuses commits, since libdb's own switch to a new log file would
	// meet the full disk inside a commit's write.
	full atomic.Pointer[error]
}

// noRoom returns the error of a write ahead the full file system refused,
// or nil. Nil-safe.
func (p *prezeroer) noRoom() error {
	if p == nil {
		return nil
	}
	if e := p.full.Load(); e != nil {
		return *e
	}
	return nil
}

// Prezero timing: how often the current log file is looked at, the chunk
// written between checks for quit, and the pause after each chunk while
// zeros are written, so that commits' fsyncs share the disk with them.
const (
	prezeroEvery     = 200 * time.Millisecond
	prezeroChunk     = 256 << 10
	prezeroPause     = 5 * time.Millisecond
	prezeroRetry     = time.Minute // after a failure
	prezeroRetryFull = time.Second // after a full file system: commits wait for it
)

// prezeroTemp is the file the zeros are written to: a dotfile, which
// libdb's log listing, backups and the directory checks all ignore.
const prezeroTemp = ".log.prezero"

var errPrezeroStopped = errors.New("bdb: log prezeroer stopped")

// startPrezero starts a prezeroer for the environment in dir.
func startPrezero(dir string, stat func() (uint32, uint32, error), log *slog.Logger) *prezeroer {
	p := &prezeroer{dir: dir, stat: stat, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	os.Remove(filepath.Join(dir, prezeroTemp)) // left by a crash
	go p.run()
	return p
}

// stop ends the prezeroer and waits for it; a file half written is
// removed. Safe on nil.
func (p *prezeroer) stop() {
	if p == nil {
		return
	}
	close(p.quit)
	<-p.done
}

func (p *prezeroer) run() {
	defer close(p.done)
	t := time.NewTicker(prezeroEvery)
	defer t.Stop()
	var failed time.Time
	var ahead uint32 // the number of the last file written ahead; 0: none, or gone
	passed := func(cur uint32) bool { return ahead != 0 && ahead != cur && ahead != cur+1 }
	for {
		select {
		case <-p.quit:
			// One last look: the environment closes next, and a file
			// libdb passed by would stay until it opens again. Env.Close
			// marks the environment closing first, so libdb's log cannot
			// be asked; the directory tells.
			if cur, _, err := p.stat(); err == nil && passed(cur) || err != nil && ahead != 0 && writtenAbove(p.dir, ahead) {
				p.dropStale(ahead)
			}
			return
		case <-t.C:
		}
		cur, size, err := p.stat()
		if err != nil {
			return // the environment is closing
		}
		if passed(cur) {
			// libdb's log moved elsewhere without taking the file: an
			// internal init restarted a replica's log at the master's
			// file number, or a rollback truncated it. A zero file below
			// the log's first would be taken for its first file.
			p.dropStale(ahead)
			ahead = 0
		}
		retry := prezeroRetry
		if p.full.Load() != nil {
			retry = prezeroRetryFull
		}
		if cur == 0 || size == 0 || time.Since(failed) < retry || replInitPending(p.dir) {
			continue
		}
		next := logPath(p.dir, cur+1)
		if _, err := os.Lstat(next); !errors.Is(err, fs.ErrNotExist) {
			p.full.Store(nil)
			continue // written ahead already, or libdb's now
		}
		mode := fs.FileMode(0o640)
		if fi, err := os.Stat(logPath(p.dir, cur)); err == nil {
			mode = fi.Mode().Perm()
		}
		switch err := p.write(cur+1, int64(size), mode); {
		case errors.Is(err, errPrezeroStopped):
			return
		case err == nil:
			ahead = cur + 1
			p.full.Store(nil)
		case errors.Is(err, syscall.ENOSPC):
			failed = time.Now()
			if p.full.Load() == nil {
				p.log.Error("bdb: no room on the file system for the next log file: commits are refused until there is", "dir", p.dir, "file", filepath.Base(next), "err", err)
			}
			full := fmt.Errorf("bdb: no room for the next log file %s: %w", next, kv.ErrNoSpace)
			p.full.Store(&full)
		case err != nil:
			failed = time.Now()
			p.log.Warn("bdb: could not write the next log file ahead (commits go on, their fsyncs slower); retrying in a minute",
				"dir", p.dir, "file", filepath.Base(next), "err", err)
		}
	}
}

// dropStale removes log file n if its header is still unwritten (libdb
// never took it), and reports whether it is gone.
func (p *prezeroer) dropStale(n uint32) bool {
	path := logPath(p.dir, n)
	if !LogHeaderUnwritten(path) {
		return false
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.log.Warn("bdb: could not remove a log file written ahead that libdb passed by", "dir", p.dir, "file", filepath.Base(path), "err", err)
		return false
	}
	if err := staging.SyncDir(p.dir); err != nil {
		p.log.Warn("bdb: removed a log file written ahead that libdb passed by, but could not sync the directory", "dir", p.dir, "file", filepath.Base(path), "err", err)
	}
	p.log.Info("bdb: removed a log file written ahead that libdb passed by (its log moved on while the zeros were written, or a replica's internal init or a rollback moved it)", "dir", p.dir, "file", filepath.Base(path))
	return true
}

// writtenAbove reports whether dir holds a log file numbered above n whose
// header libdb wrote: libdb writes its log files in order, so its log is
// then past file n for good.
func writtenAbove(dir string, n uint32) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		m := LogNumber(e.Name())
		if m <= int(n) {
			continue
		}
		if written, ok := logHeader(filepath.Join(dir, e.Name())); ok && written {
			return true
		}
	}
	return false
}

// LogHeaderUnwritten reports whether the file at path holds nothing but
// zero bytes in its first 256 (an empty file included): a log file
// created, or written ahead, but not yet written by libdb, which holds
// no record (libdb's DB_LV_INCOMPLETE).
func LogHeaderUnwritten(path string) bool {
	written, ok := logHeader(path)
	return ok && !written
}

// logHeader reads the first 256 bytes of the file at path: written is
// whether any of them is not zero; ok is false if they could not be read.
func logHeader(path string) (written, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return false, false
	}
	defer f.Close()
	var b [256]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return false, false
	}
	for _, c := range b[:n] {
		if c != 0 {
			return true, true
		}
	}
	return false, true
}

// StrayLogs lists the log files of dir that hold no record and that
// libdb's open and recovery pass over: files whose header is unwritten
// (LogHeaderUnwritten) and that are either the last log file (created at a
// switch a kill -9 interrupted, or written ahead) or numbered below every
// written one (written ahead, then passed by; releases before the
// prezeroer's look after its link left them). A zero file between written
// ones is not listed: that is damage.
func StrayLogs(dir string) (last string, below []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("bdb: list the log files of %s: %w", dir, err)
	}
	lastN, firstWritten := 0, 0
	var unwritten []string // in name order (os.ReadDir), which is number order
	for _, e := range ents {
		n := LogNumber(e.Name())
		if n == 0 {
			continue
		}
		lastN = max(lastN, n)
		if LogHeaderUnwritten(filepath.Join(dir, e.Name())) {
			unwritten = append(unwritten, e.Name())
		} else if firstWritten == 0 || n < firstWritten {
			firstWritten = n
		}
	}
	for _, name := range unwritten {
		switch n := LogNumber(name); {
		case n == lastN:
			last = name
		case n < firstWritten:
			below = append(below, name)
		}
	}
	return last, below, nil
}

// removeStrayBelow removes the log files written ahead that libdb passed by
// and left below its first log file (see StrayLogs): 10 MB each, never
// read, and never removed by libdb's log_archive. OpenEnv calls it before
// libdb opens a writable environment (not while a replica's internal init
// is pending, which rewrites the log itself).
func removeStrayBelow(dir string, log *slog.Logger) {
	_, below, err := StrayLogs(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return // libdb's open says so
	}
	if err != nil {
		log.Warn("bdb: could not look for log files written ahead and left behind", "dir", dir, "err", err)
		return
	}
	for _, name := range below {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			log.Warn("bdb: could not remove a log file written ahead that libdb passed by", "dir", dir, "file", name, "err", err)
			continue
		}
		log.Info("bdb: removed a log file written ahead that libdb passed by (no record, below the log's first file)", "dir", dir, "file", name)
	}
}

// write writes size zero bytes to the temporary file, syncs it and links
// it to log file n, unless libdb created that file meanwhile.
func (p *prezeroer) write(n uint32, size int64, mode fs.FileMode) (err error) {
	next := logPath(p.dir, n)
	tmp := filepath.Join(p.dir, prezeroTemp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()
	zero := make([]byte, prezeroChunk)
	for off := int64(0); off < size; off += int64(len(zero)) {
		select {
		case <-p.quit:
			return errPrezeroStopped
		default:
		}
		n := min(int64(len(zero)), size-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			return err
		}
		// Small synced chunks with pauses: one sync of the whole file,
		// or of 1 MiB chunks, queued enough writes in front of the
		// commits' fsyncs to raise their max latency to 16–21 ms at 32
		// connections (8–9 ms so, as without writing ahead).
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
		time.Sleep(prezeroPause)
	}
	if err := f.Sync(); err != nil { // the size, in the inode
		return err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	if err := os.Link(tmp, next); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // libdb switched first: its file stays
		}
		return err
	}
	// libdb may have switched into file n, on past it, and removed it
	// with the logs a checkpoint freed, all while the zeros were being
	// written (a fast import): the link then made a file below the log's
	// first, which the next open would take for a damaged log file. One
	// look now; the environment may close before the next tick. While it
	// closes (a link made as Close waited for this write) libdb's log
	// cannot be asked: a written log file above n tells.
	if cur, _, err := p.stat(); err == nil && cur > n || err != nil && writtenAbove(p.dir, n) {
		if p.dropStale(n) {
			return nil
		}
	}
	if err := staging.SyncDir(p.dir); err != nil {
		return err
	}
	p.made.Add(1)
	return nil
}

// logPath is the path of log file n of the environment in dir.
func logPath(dir string, n uint32) string {
	return filepath.Join(dir, fmt.Sprintf("log.%010d", n))
}
