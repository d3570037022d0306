//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/durusbdb/durusbdb/kv"
)

// roomKeeper keeps disk blocks allocated past the end of every database
// file of a writable environment (fallocate with FALLOC_FL_KEEP_SIZE: the
// files' sizes do not change), so that the page writes by which libdb
// grows a file (a checkpoint, the cache making room) land in blocks that
// are already the file's. On a file system that another process filled, a
// page write that needs new blocks can stop part-way: a QA round's
// checkpoint wrote 12 KiB of a new 16 KiB page of objects.db, and no
// recovery could read the directory again (checksum error on that page).
// The engine's free-space reserve cannot prevent that, since it does not
// own the file system's free space; blocks allocated ahead are owned.
//
// Every roomTick it tops up a file whose room past its end fell below
// half of roomFor(its size) to roomFor(its size). A top-up that fails for lack of space makes
// Short report it, and the engine refuses commits (kv.RoomReporter) until
// a later top-up succeeds: the room left then still takes the pages of the
// commits already made.
type roomKeeper struct {
	dir string
	log *slog.Logger
	// ends returns, by file name, where each open database file ends as
	// libdb's cache sees it (Env.logicalEnds): pages created but not yet
	// written lie past the file's end on disk, and the room must start
	// after them. nil in tests that have no environment.
	ends func() map[string]int64
	quit chan struct{}
	done chan struct{}

	topMu sync.Mutex          // one top-up at a time (the loop's, or Reserve's)
	files map[string]*os.File // database files held open, by name; guarded by topMu

	mu      sync.Mutex
	short   error // the last failed top-up's error, nil once one succeeds; guarded by mu
	off     bool  // the file system cannot preallocate: nothing to do; guarded by mu
	pending int64 // bytes Reserve admitted since the last top-up began, times roomFactor; guarded by mu
}

// roomFactor is what a byte of a commit may cost the database files
// (pages, reference counts, the garbage queue), as the engine's free-space
// guard counts it.
const roomFactor = 4

// Bounds of the room kept allocated past the end of each database file
// (roomFor): what a file may grow by between two top-ups (roomTick), or
// after the disk filled, without risking a torn page.
const (
	minRoom = 2 << 20
	maxRoom = 32 << 20
)

// roomFor is the room kept past the end of a file of size bytes: a
// quarter of it, within minRoom and maxRoom (a big file grows fast under
// load; five small ones must fit a small file system).
func roomFor(size int64) int64 { return min(max(size/4, minRoom), maxRoom) }

// roomTick is how often roomKeeper looks at the files' room.
const roomTick = 100 * time.Millisecond

// startRoom starts the keeper of dir's database files after one top-up.
func startRoom(dir string, ends func() map[string]int64, log *slog.Logger) *roomKeeper {
	k := &roomKeeper{dir: dir, ends: ends, log: log, files: map[string]*os.File{},
		quit: make(chan struct{}), done: make(chan struct{})}
	k.topUp()
	go k.loop()
	return k
}

// loop tops the files up every roomTick until stop.
func (k *roomKeeper) loop() {
	defer close(k.done)
	t := time.NewTicker(roomTick)
	defer t.Stop()
	for {
		select {
		case <-k.quit:
			return
		case <-t.C:
			if k.topUp() {
				return // preallocation unsupported here
			}
		}
	}
}

// stop ends the loop and closes the files it held. Nil-safe.
func (k *roomKeeper) stop() {
	if k == nil {
		return
	}
	close(k.quit)
	<-k.done
	k.topMu.Lock()
	defer k.topMu.Unlock()
	for _, f := range k.files {
		f.Close()
	}
	k.files = nil
}

// Reserve is called before about n bytes are written to the database
// files (a commit, when it is staged): once the writes admitted since the
// last top-up may have taken a quarter of the smallest room, it tops the
// files up at once, so that no burst of commits outgrows the room between
// two ticks (a server filled a small disk within one). It returns Short's
// verdict. Nil-safe.
func (k *roomKeeper) Reserve(n int64) error {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	k.pending += n * roomFactor
	due := !k.off && k.pending >= minRoom/4
	k.mu.Unlock()
	if due {
		k.topUp()
	}
	return k.Short()
}

// Short returns nil while every database file has its room, or an error
// wrapping kv.ErrNoSpace naming the file whose room could not be made.
// Nil-safe.
func (k *roomKeeper) Short() error {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.short
}

// isDataFile reports whether name is a database file of the environment
// (not a region file, a log or a dotfile).
func isDataFile(name string) bool {
	return strings.HasSuffix(name, ".db") && !strings.HasPrefix(name, "__db") && !strings.HasPrefix(name, ".")
}

// topUp gives every database file its room, and reports whether the file
// system cannot preallocate at all (the keeper then stops, saying so).
func (k *roomKeeper) topUp() (unsupported bool) {
	k.topMu.Lock()
	defer k.topMu.Unlock()
	k.mu.Lock()
	if k.off {
		k.mu.Unlock()
		return true
	}
	k.pending = 0
	k.mu.Unlock()
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return false
	}
	var ends map[string]int64
	if k.ends != nil {
		ends = k.ends()
	}
	var short error
	for _, e := range ents {
		if !e.Type().IsRegular() || !isDataFile(e.Name()) {
			continue
		}
		err := k.topUpFile(e.Name(), ends[e.Name()])
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			k.log.Info("bdb: this file system cannot allocate blocks ahead of the database files; a full disk may tear a page being written", "dir", k.dir, "err", err)
			k.mu.Lock()
			k.off, k.short = true, nil
			k.mu.Unlock()
			return true
		}
		if err != nil && short == nil {
			short = err
		}
	}
	k.mu.Lock()
	was := k.short
	k.short = short
	k.mu.Unlock()
	switch {
	case short != nil && was == nil:
		k.log.Error("bdb: cannot keep room allocated ahead of a database file: commits are refused until there is space again", "dir", k.dir, "err", short)
	case short == nil && was != nil:
		k.log.Info("bdb: room allocated ahead of the database files again: commits are accepted", "dir", k.dir)
	}
	return false
}

// topUpFile makes the blocks of the file name reach roomFor(its size)
// past its end, or past end (where libdb's cache has it end) when that is
// further, if less than half of that room is there.
func (k *roomKeeper) topUpFile(name string, end int64) error {
	f := k.files[name]
	if f == nil {
		var err error
		if f, err = os.OpenFile(filepath.Join(k.dir, name), os.O_RDWR, 0); err != nil {
			return nil // removed or renamed meanwhile: the next look sees
		}
		k.files[name] = f
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil
	}
	if st.Nlink == 0 { // removed: forget it
		f.Close()
		delete(k.files, name)
		return nil
	}
	room := roomFor(st.Size)
	end = max(end, st.Size)
	if st.Blocks*512-end >= room/2 { // the file is dense: its blocks end at Blocks·512
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, st.Size, end+room-st.Size)
	if err == unix.ENOSPC {
		return fmt.Errorf("bdb: %s: no room to allocate %d MiB past its end: %w", filepath.Join(k.dir, name), room>>20, kv.ErrNoSpace)
	}
	if err != nil {
		return fmt.Errorf("bdb: %s: allocate room past its end: %w", filepath.Join(k.dir, name), err)
	}
	return nil
}
