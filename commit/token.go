package commit

import (
	"context"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"
)

// DefaultLease is the commit lease of PROTOCOL.md §9: how long a holder may
// keep the token while another connection waits for it.
const DefaultLease = 5 * time.Second

// Token is the commit token of PROTOCOL.md §5.4. At most one Hold is live at
// a time; waiters are granted the token in arrival order (FIFO; a Requeue
// keeps the arrival of the revoked Hold it replaces). A holder that keeps
// the token longer than the lease while somebody waits has its Hold revoked
// and the token passes on, unless the holder has pinned the Hold (it is
// applying its transaction; applying is short and never waits for the
// client).
//
// Fairness: a holder is also revoked, however recently it was granted, once
// the oldest waiter has waited a whole lease. So a queue of holders that
// never pin (clients that stall after phase 1) is passed over at once when
// its head is overdue, and no waiter waits much more than one lease after
// the holder it found on arrival gave up or ran out, whatever the number of
// stallers queued ahead of it (a FIFO with a per-holder lease would make it
// wait one lease per staller). The price is paid only when waits already
// exceed the lease: a holder granted then may be revoked before its data
// arrives; its Requeue keeps its old arrival, so it is granted next.
//
// The Token also keeps the commit sequence number: Done(true) increases it.
// The server calls Done(true) once a commit is staged and announced (its
// invalidations sent), before it is applied, so Seq counts the commits
// passed under the token, not those applied. A holder whose Hold was
// revoked can tell, by comparing Seq with the value its first Hold was
// granted at, whether any commit was passed meanwhile (rule 9 of §5.5).
//
// A Token is safe for concurrent use. The zero value is not usable; call
// NewToken.
type Token struct {
	lease time.Duration

	mu      sync.Mutex
	holder  *Hold   // current holder, nil when free
	waiters []*Hold // FIFO of holds not yet granted
	seq     uint64  // commits passed with Done(true)
	timer   *time.Timer
	armedAt time.Time // when timer fires; zero: not pending (never armed, or fired)
	arms    uint64    // timer (re)arms, for tests
	revokes uint64    // number of revocations (Revocations)
}

// holdState is the life cycle of a Hold.
type holdState uint8

const (
	holdWaiting  holdState = iota // queued, not granted
	holdHeld                      // granted, revocable
	holdPinned                    // granted, applying: not revocable
	holdRevoked                   // taken away by the lease
	holdReleased                  // given back, or abandoned while waiting
)

// Hold is one grant of the Token to one caller. Its methods may be called
// from the holder's goroutine while the Token revokes it from another.
type Hold struct {
	t       *Token
	state   holdState // guarded by t.mu
	granted chan struct{}
	arrival time.Time // when first queued (kept by Requeue)
	since   time.Time // when granted
	seq     uint64    // Token's sequence number when granted
}

// NewToken returns a free token with the given lease; lease <= 0 means
// DefaultLease.
func NewToken(lease time.Duration) *Token {
	if lease <= 0 {
		lease = DefaultLease
	}
	return &Token{lease: lease}
}

// Seq returns the number of commits passed under the token so far (calls
// of Hold.Done(true)); the server passes a commit once it is staged.
func (t *Token) Seq() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// Revocations returns how many holds the lease has revoked so far (the
// server's tests check the lease with it).
func (t *Token) Revocations() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.revokes
}

// Waiting returns the number of callers queued for the token (the
// server's tests wait for queued stallers with it).
func (t *Token) Waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waiters)
}

// Acquire waits for the token in FIFO order and returns the granted Hold.
// If ctx ends first it returns ctx's error and leaves the queue. The caller
// must end the Hold with Release or Done.
func (t *Token) Acquire(ctx context.Context) (*Hold, error) {
	return t.acquire(ctx, time.Now())
}

// Requeue is Acquire for the holder of prev, a Hold that was revoked (or
// has ended): the new Hold is queued by prev's arrival, ahead of callers
// that arrived after prev was first queued. Its sequence number is that of
// its own grant; compare with prev.Seq to apply rule 9.
func (t *Token) Requeue(ctx context.Context, prev *Hold) (*Hold, error) {
	return t.acquire(ctx, prev.arrival)
}

// acquire queues a Hold that arrived at arrival and waits for its grant.
func (t *Token) acquire(ctx context.Context, arrival time.Time) (*Hold, error) {
	h := &Hold{t: t, arrival: arrival}
	t.mu.Lock()
	if t.holder == nil && len(t.waiters) == 0 {
		t.grantLocked(h)
		t.mu.Unlock()
		return h, nil
	}
	h.granted = make(chan struct{})
	// Keep the queue ordered by arrival (stable: after equal arrivals).
	i := sort.Search(len(t.waiters), func(i int) bool { return t.waiters[i].arrival.After(arrival) })
	t.waiters = slices.Insert(t.waiters, i, h)
	t.armLocked()
	t.mu.Unlock()

	select {
	case <-h.granted:
		return h, nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	switch h.state {
	case holdWaiting:
		for i, w := range t.waiters {
			if w == h {
				t.waiters = append(t.waiters[:i], t.waiters[i+1:]...)
				break
			}
		}
		h.state = holdReleased
		t.armLocked()
		t.mu.Unlock()
	default:
		// Granted meanwhile: give it back.
		t.mu.Unlock()
		h.Release()
	}
	return nil, ctx.Err()
}

// grantLocked makes h the holder. t.mu is held.
func (t *Token) grantLocked(h *Hold) {
	h.state = holdHeld
	h.since = time.Now()
	h.seq = t.seq
	t.holder = h
	if h.granted != nil {
		close(h.granted)
	}
	t.armLocked()
}

// passLocked gives the token to the first waiter, if any, and reports
// whether there was one. t.mu is held and t.holder is nil.
func (t *Token) passLocked() bool {
	if len(t.waiters) == 0 {
		t.armLocked()
		return false
	}
	next := t.waiters[0]
	t.waiters[0] = nil
	t.waiters = t.waiters[1:]
	if len(t.waiters) == 0 {
		t.waiters = nil
	}
	t.grantLocked(next)
	return true
}

// deadlineLocked is when the revocable holder h loses the token while
// somebody waits: one lease after it was granted or after the oldest
// waiter arrived, whichever is earlier. t.mu is held; t.waiters is not
// empty.
func (t *Token) deadlineLocked(h *Hold) time.Time {
	start := h.since
	if a := t.waiters[0].arrival; a.Before(start) {
		start = a
	}
	return start.Add(t.lease)
}

// armLocked makes sure the lease timer fires no later than the deadline
// of a revocable holder for whom somebody waits. It is lazy: a timer
// already due at or before that deadline is left alone, and a timer no
// longer needed (the holder pinned or left, nobody waits) is not stopped:
// it fires once, expire finds nothing overdue and does not re-arm. So a
// commit (grant, then pin at once) costs no timer operation, only a
// comparison; a needless expiry costs one call per lease at most. t.mu is
// held.
func (t *Token) armLocked() {
	h := t.holder
	if h == nil || h.state != holdHeld || len(t.waiters) == 0 {
		return
	}
	dl := t.deadlineLocked(h)
	if !t.armedAt.IsZero() && !t.armedAt.After(dl) {
		return // due before the deadline: expire checks again then
	}
	d := time.Until(dl)
	if d < 0 {
		d = 0
	}
	t.armedAt = dl
	t.arms++
	if t.timer == nil {
		t.timer = time.AfterFunc(d, t.expire)
	} else {
		t.timer.Reset(d)
	}
}

// expire runs on the lease timer: it revokes an overdue revocable holder
// when somebody waits, and goes on down the queue while the oldest waiter
// is overdue (each newly granted holder is then revoked at once: it has
// not pinned, and a waiter has waited a lease already).
func (t *Token) expire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Fired: not pending any more (a Reset since then arms it again, and
	// this call only checks early; armLocked below re-arms if needed).
	t.armedAt = time.Time{}
	for {
		h := t.holder
		if h == nil || h.state != holdHeld || len(t.waiters) == 0 {
			t.armLocked()
			return
		}
		if time.Now().Before(t.deadlineLocked(h)) {
			t.armLocked()
			return
		}
		h.state = holdRevoked
		t.holder = nil
		t.revokes++
		t.passLocked()
	}
}

// Seq returns the Token's sequence number at the moment h was granted.
func (h *Hold) Seq() uint64 { return h.seq }

// Pin makes h irrevocable while its holder decides and stages a
// transaction. It
// returns false if h was revoked (or already ended); the caller then holds
// nothing and must Acquire again.
func (h *Hold) Pin() bool {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	switch h.state {
	case holdHeld:
		h.state = holdPinned
		h.t.armLocked()
		return true
	case holdPinned:
		return true
	}
	return false
}

// Done ends h. If passed is true (a commit was staged and announced under
// h) the Token's sequence number increases; only a pinned hold may pass a
// commit. The token passes to the next waiter. Done on a revoked or ended
// hold does nothing; passed is then ignored. It reports whether the token
// went to a waiter.
func (h *Hold) Done(passed bool) (handed bool) {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	switch h.state {
	case holdHeld, holdPinned:
	default:
		return false
	}
	if passed {
		if h.state != holdPinned {
			panic("commit: Hold.Done(true) on a hold that is not pinned")
		}
		t.seq++
	}
	h.state = holdReleased
	t.holder = nil
	return t.passLocked()
}

// Handoff is Done(true) for a caller whose own next work can wait: when
// the token goes to a waiter, it yields the processor (runtime.Gosched)
// before it returns, a hand-off as sync.Mutex makes in starvation mode.
// The token is the serial stage of every commit and the new holder's next
// step (its phase-1 reply) is on that path; without the yield the new
// holder sits in the caller's run queue until the caller blocks or
// another thread steals it. A caller that goes on to apply its own commit
// inline (durability nosync) gains: nosync commits at 8 connections went
// from 9–10k/s to 15–17k/s (docs/PERFORMANCE.md, fourteenth session). A
// caller that may lead the group flush next must not yield: the yielded
// goroutine waits in the global run queue, and every commit of the group
// waits for its leader (sync commits lost 5–15% with the yield).
func (h *Hold) Handoff() {
	if h.Done(true) {
		runtime.Gosched()
	}
}

// Release ends h without applying anything. It is safe to call more than
// once and after revocation.
func (h *Hold) Release() { h.Done(false) }
