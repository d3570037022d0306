package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// ErrInflight is wrapped by the error of a request refused because the
// bytes it needed in flight did not fit in the server's budget
// (Config.MaxInflight) within Config.InflightWait.
var ErrInflight = errors.New("server: bytes in flight over the budget")

// Bounds of the machine-sized default budget (MachineInflight).
const (
	// MinDefaultInflight is the smallest default budget.
	MinDefaultInflight = 64 << 20
	// MaxDefaultInflight is the largest default budget.
	MaxDefaultInflight = 4 << 30
	// FallbackInflight is the default budget when the machine's memory
	// cannot be read.
	FallbackInflight = 1 << 30
)

// chargeMin is the reply size from which a load reply is charged to the
// budget; smaller ones pass through the connection's write buffer, whose
// size already bounds them.
const chargeMin = writeBufSize

// MachineInflight returns the default budget of bytes in flight: an eighth
// of the memory available to the process (the smaller of MemTotal in
// /proc/meminfo and a cgroup v2 memory.max), between MinDefaultInflight and
// MaxDefaultInflight; FallbackInflight when neither can be read.
func MachineInflight() int64 {
	mem := memTotal("/proc/meminfo")
	if cg := cgroupMax("/sys/fs/cgroup/memory.max"); cg > 0 && (mem <= 0 || cg < mem) {
		mem = cg
	}
	if mem <= 0 {
		return FallbackInflight
	}
	return min(max(mem/8, MinDefaultInflight), MaxDefaultInflight)
}

// memTotal reads MemTotal (bytes) from a meminfo file; 0 if unknown.
func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// cgroupMax reads a cgroup v2 memory.max; 0 if absent or "max".
func cgroupMax(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// inflight is the server's one budget of bytes in flight: commit data
// being read and large load replies being written. A buffer shared by
// several replies (the engine hands concurrent loads of one record the same
// copy) is charged once, while any of them holds it.
//
// Released bytes stay counted as garbage until a collection has run: a
// request that fits only without the garbage runs one (runtime.GC, one at
// a time) instead of allocating on top of it, so the process's memory, not
// only the live bytes, stays within the budget. A reply buffer the
// storage still keeps when its last reply is written (the record cache's
// copy) is no garbage: its charge simply goes back.
type inflight struct {
	limit int64
	kept  func(oid uint64, buf []byte) bool // see newInflight; may be nil

	mu      sync.Mutex
	used    int64 // owned by mu
	garbage int64 // released, maybe not yet collected; owned by mu
	gc      bool  // a collection for garbage is running; owned by mu
	// collections counts the collections run for garbage; owned by mu.
	collections int
	wake        chan struct{}           // closed at the next release; owned by mu
	shared      map[*byte]*sharedCharge // charged reply buffers; owned by mu

	// Waiters that hold charged bytes while they wait (commits growing
	// their buffers): when they hold every charged byte, none can proceed
	// until one gives up, so the smallest holder is told to at once.
	waiters     map[*waiter]struct{} // owned by mu
	heldWaiting int64                // bytes held by waiters; owned by mu
	victim      *waiter              // told to give up, not yet gone; owned by mu
}

// waiter is an acquire waiting for room.
type waiter struct {
	held   int64
	giveUp chan struct{} // closed when it must give up (deadlock)
}

// sharedCharge is the charge of one reply buffer and its holders; oid and
// buf say what it holds, for inflight.kept.
type sharedCharge struct {
	n    int64
	refs int
	oid  uint64
	buf  []byte
}

// newInflight returns a budget of limit bytes; kept, if not nil, tells
// whether the storage still holds a reply buffer of oid (its record cache)
// when the last reply releases it: such a charge goes back without
// counting as garbage.
func newInflight(limit int64, kept func(oid uint64, buf []byte) bool) *inflight {
	return &inflight{limit: limit, kept: kept, shared: make(map[*byte]*sharedCharge), waiters: make(map[*waiter]struct{})}
}

// usage returns the bytes charged now.
func (b *inflight) usage() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// acquire charges n bytes, waiting up to wait (or until ctx ends) for
// room. More than the whole budget fails at once. The error wraps
// ErrInflight (or is ctx's).
func (b *inflight) acquire(ctx context.Context, n int64, wait time.Duration) error {
	return b.acquireHolding(ctx, n, 0, wait)
}

// acquireHolding is acquire for a caller that holds held charged bytes it
// releases only after this call (a growing commit buffer). If every charged
// byte is held by such waiters, the one holding least fails at once with
// ErrInflight, so that the others can proceed when it releases.
func (b *inflight) acquireHolding(ctx context.Context, n, held int64, wait time.Duration) error {
	if n > b.limit {
		return fmt.Errorf("server: %d bytes in flight wanted, more than the whole budget of %d: %w", n, b.limit, ErrInflight)
	}
	var timer *time.Timer
	var me *waiter
	defer func() {
		if me != nil {
			b.mu.Lock()
			delete(b.waiters, me)
			b.heldWaiting -= me.held
			if b.victim == me {
				b.victim = nil
			}
			b.mu.Unlock()
		}
	}()
	for {
		b.mu.Lock()
		if b.used+b.garbage+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		if b.used+n <= b.limit && b.garbage > 0 && !b.gc {
			// Room once the garbage is collected.
			b.gc = true
			g := b.garbage
			b.mu.Unlock()
			runtime.GC()
			b.mu.Lock()
			b.garbage -= g
			b.gc = false
			b.collections++
			b.wakeLocked()
			b.mu.Unlock()
			continue
		}
		if b.wake == nil {
			b.wake = make(chan struct{})
		}
		if me == nil {
			me = &waiter{held: held, giveUp: make(chan struct{})}
			b.waiters[me] = struct{}{}
			b.heldWaiting += held
		}
		b.breakDeadlockLocked()
		w, used := b.wake, b.used
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-w:
		case <-me.giveUp:
			return fmt.Errorf("server: %d bytes in flight wanted while holding %d; the budget of %d is held by requests waiting for each other: %w", n, held, b.limit, ErrInflight)
		case <-timer.C:
			return fmt.Errorf("server: %d bytes in flight wanted, %d of the budget of %d in use for %v: %w", n, used, b.limit, wait, ErrInflight)
		case <-ctx.Done():
			return fmt.Errorf("server: waiting for bytes in flight: %w", ctx.Err())
		}
	}
}

// breakDeadlockLocked tells the waiter holding least to give up when the
// waiters hold every charged byte (nothing else will be released) and no
// collection can make room; b.mu is held.
func (b *inflight) breakDeadlockLocked() {
	if b.victim != nil || b.gc || b.garbage > 0 || b.used > b.heldWaiting {
		return
	}
	var v *waiter
	for w := range b.waiters {
		if w.held > 0 && (v == nil || w.held < v.held) {
			v = w
		}
	}
	if v != nil {
		b.victim = v
		close(v.giveUp)
	}
}

// release gives back n bytes and wakes the waiters.
func (b *inflight) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.garbage += n
	b.wakeLocked()
	b.mu.Unlock()
}

// cancel gives back n bytes that were reserved but never allocated (a
// load refused before it read, a record smaller than its reservation):
// unlike release, nothing is counted as garbage awaiting a collection.
func (b *inflight) cancel(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.wakeLocked()
	b.mu.Unlock()
}

// wakeLocked wakes the waiters of acquire; b.mu is held.
func (b *inflight) wakeLocked() {
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

// tryShared counts one more holder of buf, the record of oid, if buf is
// already charged, or charges it if it fits now; it returns the release of
// this holder.
func (b *inflight) tryShared(oid uint64, buf []byte) (func(), bool) {
	key := unsafe.SliceData(buf)
	b.mu.Lock()
	defer b.mu.Unlock()
	if sc, ok := b.shared[key]; ok {
		sc.refs++
		return b.sharedRelease(key), true
	}
	n := int64(len(buf))
	if b.used+b.garbage+n > b.limit {
		return nil, false
	}
	b.used += n
	b.shared[key] = &sharedCharge{n: n, refs: 1, oid: oid, buf: buf}
	return b.sharedRelease(key), true
}

// adoptShared makes buf, the record of oid, a charged shared buffer using reserved bytes the
// caller acquired: if buf is already charged the reservation is given
// back, else the charge is adjusted to len(buf) (which may differ from the
// reservation by what changed since it was measured).
func (b *inflight) adoptShared(oid uint64, buf []byte, reserved int64) func() {
	key := unsafe.SliceData(buf)
	b.mu.Lock()
	if sc, ok := b.shared[key]; ok {
		sc.refs++
		b.mu.Unlock()
		b.cancel(reserved) // the shared buffer is not a new allocation
		return b.sharedRelease(key)
	}
	n := int64(len(buf))
	b.used += n - reserved
	b.shared[key] = &sharedCharge{n: n, refs: 1, oid: oid, buf: buf}
	if n < reserved {
		b.wakeLocked()
	}
	b.mu.Unlock()
	return b.sharedRelease(key)
}

// sharedRelease returns the release of one holder of the buffer at key;
// the last one gives its bytes back.
func (b *inflight) sharedRelease(key *byte) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			sc := b.shared[key]
			sc.refs--
			if sc.refs > 0 {
				b.mu.Unlock()
				return
			}
			delete(b.shared, key)
			b.mu.Unlock()
			if b.kept != nil && b.kept(sc.oid, sc.buf) {
				b.cancel(sc.n) // the storage keeps it: no garbage
				return
			}
			b.release(sc.n)
		})
	}
}

// InflightBytes returns the bytes in flight charged now and the budget.
func (s *Server) InflightBytes() (used, limit int64) {
	return s.inflight.usage(), s.inflight.limit
}
