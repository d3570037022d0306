package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/durusbdb/durusbdb/commit"
	"github.com/durusbdb/durusbdb/durus/record"
)

// commitPath is the server half of the commit pipeline: the commit token,
// the rules of PROTOCOL.md §5.5 the server decides, the allocation lock
// with the unused sets of every connection, ROOT_OID's rules (root.go) and
// the invalidation of the other connections. It is embedded in Server (one
// per server, so s.allocMu, s.token, s.invalidate … name its fields and
// methods); a connection's commit (commit.go: C, forward.go: F) reads the
// request and writes the reply, and calls these methods for every decision
// and every change of shared state. The engine half, from Storage.Stage to
// the durable apply, is the pipeline type of engine/pipeline.go, whose doc
// comment describes the whole path, the engine's invariants and the full
// lock graph.
//
// # Owners
//
//   - token: the commit token (commit.Token, FIFO with a lease). A
//     connection holds it (conn.hold) from phase 1 until its commit is
//     staged and announced, or refused; pin makes the hold irrevocable
//     before rules 6–9 are decided.
//   - allocMu guards owners (the unused sets of all connections, one
//     ordered run list with an owner per run), root, roNext/roInit (oids
//     handed out from memory on a read-only storage) and, on each conn,
//     unusedN and waitedRoot.
//   - The invalid sets are per connection (conn.invalid under conn.mu);
//     invalidate is the only writer other than the connection itself.
//
// # Rules, in order (§5.5)
//
// Rules 1–2 (lengthRule) are decided from the length alone, and rule 1's
// count of records (countRule) from the frame lengths as soon as the data
// has arrived, before the frames are charged or parsed; 3–5 and 8
// (checkFrames) from the data before the token is pinned, 6–7 (checkOwners)
// under allocMu with the token pinned, 9 against Token.Seq (admit). Rules
// 10–11 are the storage's (Storage.Stage; answered by conn.commitFailed).
//
// # Invariants
//
//   - Refusals are decided before any write: every rule above is checked
//     before Storage.Stage, and a refusal in Stage has no effect at all, so
//     a refused commit leaves the unused set, the invalid sets and the
//     token's sequence as they were.
//   - Invalidate before the token passes: announce takes the oids out of
//     the committer's unused set, adds them to every other connection's
//     invalid set, and only then passes the token (Hold.Done).
//   - Unregister before the token is released: a closing connection's
//     unused set is dropped (releaseUnused) before its hold is, so the next
//     holder never sees it (rule 7).
//   - The first commit of ROOT_OID keeps allocMu from its owner check until
//     it is applied, so root release (A5) cannot hand ROOT_OID out
//     meanwhile (root.go).
//   - A staged commit refused later (in Pending.Wait) gives its oids back
//     to the committer's unused set (restoreUnused): nothing was stored,
//     and oids are handed out once (A3), so they are in nobody else's.
//
// # Lock order, server side
//
// An arrow means "is held while taking or waiting for":
//
//	Token hold → inflight budget (conn.readData, bounded by InflightWait)
//	Token hold → allocMu (rules 6–7, unused set, root)
//	Token hold → Storage.Stage (the engine's graph follows)
//	Token hold → the change follower, on a replica (SyncFollowerFrom at
//	             phase 1, bounded); the forward's hold and fan-out
//	             (announceForward); the F round trip and WaitReplicated
//	             come after the token has passed (forward.go)
//	allocMu → Storage.AllocOIDs: engine.allocMu → writeMu (N/M)
//	allocMu → forward pool, a round trip to the master (N/M on a replica)
//	allocMu → Storage.Load (rootExists) → an apply run
//	allocMu → Storage.Stage, Pending.Wait (the root's first commit only)
//	allocMu → Token.mu (rule 9 of the root's first commit)
//	connSet.mu, then (released) conn.mu of each connection (invalidate)
//
// allocMu is released before invalidate and before the token passes;
// connSet.mu (Server.mu) and conn.mu are leaves.
type commitPath struct {
	st  Storage // the server's storage
	cfg *Config // the server's configuration, read-only

	token *commit.Token

	allocMu sync.Mutex // guards owners, root, roNext, roInit, conn.unusedN, conn.waitedRoot
	owners  ownerRuns  // the unused sets of all connections
	root    rootState  // ROOT_OID's rules (root.go)
	roNext  uint64     // read-only storage: next oid handed out from memory
	roInit  bool

	gcAcc atomic.Int64 // committed bytes since the last automatic pack

	invalidRuns atomic.Int64 // runs in the invalid sets of all connections (MaxInvalidMemory)
	// removalMu is held shared by the fan-outs of removals and exclusively
	// by a commit's fan-out while it makes room in the invalid sets
	// (invalidate): no removal lands between its forgetting and its
	// retries.
	removalMu sync.RWMutex

	// fanout recycles invalidate's list of connections (*[]*conn), one
	// allocation of a pointer per open connection per commit otherwise.
	fanout sync.Pool

	open *connSet // the server's open connections: the invalidation fan-out's targets
	// reserve reserves n fresh oids (Server.allocOIDs): from the storage,
	// or on a replica from the master.
	reserve func(n int) (uint64, error)
}

// init makes p ready for the server's storage and configuration.
func (p *commitPath) init(cfg *Config, st Storage, open *connSet, reserve func(int) (uint64, error)) {
	p.st, p.cfg = st, cfg
	p.token = commit.NewToken(cfg.CommitLease)
	p.open, p.reserve = open, reserve
}

// lengthRule decides rules 1 and 2 of §5.5, which need only the length n
// of the commit data: 1 if it is above the commit limit, 2 if the storage
// is read-only, 0 if neither refuses it.
func (p *commitPath) lengthRule(n uint32) int {
	switch {
	case int64(n) > p.cfg.MaxCommit:
		return 1
	case p.st.ReadOnly():
		return 2
	}
	return 0
}

// countRule decides the second half of rule 1 of §5.5 for a commit of nf
// frames (countFrames): more records than an invalid set may hold
// (Config.MaxInvalid) are refused. Announced, such a commit would put the
// invalid set of every other open connection over its cap, however
// recently it synced, and I7 would close them all: the cap bounds the list
// a client must take at its next S or phase 1 (int4 k and 8·k bytes), and
// one commit must not be able to exceed it alone. A commit of nf frames
// stores at most nf oids, and more frames than distinct oids means rule 5
// refuses it anyway, so the frame count decides without parsing.
func (p *commitPath) countRule(nf int) *frameError {
	if nf <= p.cfg.MaxInvalid {
		return nil
	}
	return &frameError{rule: 1, msg: fmt.Sprintf(
		"%d records, more than the %d oids an invalid set may hold (--max-invalid): every other connection would be told of more than its cap and closed (I7); split the transaction or raise --max-invalid",
		nf, p.cfg.MaxInvalid)}
}

// runsRule decides the last part of rule 1 of §5.5 for a commit whose
// distinct oids, sorted, are sorted: more runs of consecutive oids than an
// invalid set may hold (Config.MaxInvalidRuns) are refused, like more
// records than it may hold in oids (countRule): announced, the commit
// would put every other connection's set over that cap at once and I7
// would close them all. So are runs that, told to every open connection,
// would by themselves take the sets of all connections together over
// Config.MaxInvalidMemory: I7 would close the connections reached after
// the total went over, however recently they synced. The committer is
// counted: on a replica its own set is told of its commit too (by the
// change follower, before the reply), and closing it there would leave
// the outcome of a stored commit unknown to its client.
func (p *commitPath) runsRule(sorted []uint64) *frameError {
	// At most one run an oid; the connection count only when it matters.
	maxTotal := p.cfg.MaxInvalidMemory / runBytes
	few := len(sorted) <= p.cfg.MaxInvalidRuns
	if few && int64(len(sorted))*int64(max(p.cfg.MaxConnections, 1)) <= maxTotal {
		return nil
	}
	told := int64(p.open.count())
	if few && int64(len(sorted))*told <= maxTotal {
		return nil
	}
	runs := 1
	for i := 1; i < len(sorted); i++ {
		if sorted[i] != sorted[i-1]+1 {
			runs++
		}
	}
	if runs > p.cfg.MaxInvalidRuns {
		return &frameError{rule: 1, msg: fmt.Sprintf(
			"%d runs of consecutive oids, more than the %d an invalid set may hold (--max-invalid-runs): every other connection would be told of more than its cap and closed (I7); split the transaction or raise --max-invalid-runs",
			runs, p.cfg.MaxInvalidRuns)}
	}
	if int64(runs)*told > maxTotal {
		return &frameError{rule: 1, msg: fmt.Sprintf(
			"%d runs of consecutive oids told to %d connections: %d bytes of invalid sets, more than --max-invalid-memory (%d) for all connections together: connections would be closed (I7); split the transaction or raise --max-invalid-memory",
			runs, told, int64(runs)*told*runBytes, p.cfg.MaxInvalidMemory)}
	}
	return nil
}

// checkFrames decides rules 3, 4, 5 and 8 of §5.5, which need neither the
// token pinned nor the allocation lock. It returns the frames and their
// oids sorted.
func (p *commitPath) checkFrames(data []byte) (frames, []uint64, *frameError) {
	return p.checkFramesInto(&commitScratch{}, data)
}

// commitScratch is the memory a connection reuses from one commit to the
// next for its frames' oids and offsets, their sorted copy and their runs
// (the invalidation fan-out's input), so that a small commit allocates
// none of them. Owned by the connection's goroutine; what a commit stages
// or announces is copied out of it (the storage gets the records, the
// invalid sets copies of the runs).
type commitScratch struct {
	oids, sorted []uint64
	offs         []int
	runs         []run
}

// maxScratch is the capacity (elements) above which a connection lets a
// scratch slice go after its commit instead of keeping it.
const maxScratch = 4096

// trim drops the slices a big commit grew, once it is decided.
func (sc *commitScratch) trim() {
	if cap(sc.oids) > maxScratch || cap(sc.sorted) > maxScratch || cap(sc.offs) > maxScratch || cap(sc.runs) > maxScratch {
		*sc = commitScratch{}
	}
}

// checkFramesInto is checkFrames building the oids, offsets and sorted
// oids in sc's slices; they are valid until sc's next use.
func (p *commitPath) checkFramesInto(sc *commitScratch, data []byte) (frames, []uint64, *frameError) {
	f, fe := parseFramesInto(frames{oids: sc.oids, offs: sc.offs}, data)
	sc.oids, sc.offs = f.oids[:0], f.offs[:0]
	if fe != nil {
		return f, nil, fe
	}
	sorted := append(sc.sorted[:0], f.oids...)
	sc.sorted = sorted[:0]
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			oid := sorted[i]
			first := slices.Index(f.oids, oid)
			off := f.offs[first+1+slices.Index(f.oids[first+1:], oid)]
			return f, nil, &frameError{rule: 5, off: off, oid: oid, hasOID: true,
				msg: "the same oid in two frames"}
		}
	}
	if fe := p.runsRule(sorted); fe != nil {
		return f, nil, fe
	}
	// Rule 8 before 6 and 7: all three answer E, and the scan is best done
	// before the token is pinned.
	if vr := p.cfg.VerifyRefs; vr != nil {
		for i, rec := range f.recs {
			if err := vr(f.oids[i], rec); err != nil {
				return f, nil, &frameError{rule: 8, off: f.offs[i], oid: f.oids[i], hasOID: true,
					msg: "reference check failed: " + err.Error()}
			}
		}
	}
	return f, sorted, nil
}

// checkOwners applies rules 6 and 7 of §5.5 to the oids of f, committed by
// c: each must be ROOT_OID or below the allocation cursor, and in no other
// open connection's unused set. p.allocMu is held.
func (p *commitPath) checkOwners(c *conn, f frames) *frameError {
	cursor := p.allocCursorLocked()
	for i, oid := range f.oids {
		if oid != record.RootOID && oid >= cursor {
			return &frameError{rule: 6, off: f.offs[i], oid: oid, hasOID: true,
				msg: fmt.Sprintf("oid never handed out (allocation cursor %d)", cursor)}
		}
		if ow := p.owners.owner(oid); ow != nil && ow != c {
			return &frameError{rule: 7, off: f.offs[i], oid: oid, hasOID: true,
				msg: fmt.Sprintf("oid handed to another open connection (conn %d)", ow.id)}
		}
	}
	return nil
}

// refusal is a refused commit with its reply byte.
type refusal struct {
	frameError
	status byte
}

// rule9 is the refusal of rule 9: seq − phase1Seq commits were applied
// since phase 1 (only possible after the lease revoked the token).
func rule9(seq, phase1Seq uint64) *frameError {
	return &frameError{rule: 9,
		msg: fmt.Sprintf("%d commit(s) applied since phase 1 (token revoked by the lease)", seq-phase1Seq)}
}

// pin makes c's token hold irrevocable; if the lease took it, c queues
// again, ahead of the connections that arrived after it
// (commit.Token.Requeue, waiting until ctx ends). If a commit was applied
// meanwhile the commit is refused (rule 9, or 6 and 7 first) without
// queueing. The error ends the connection (shutdown).
func (p *commitPath) pin(ctx context.Context, c *conn, phase1Seq uint64, f frames) (*refusal, error) {
	for !c.hold.Pin() {
		prev := c.hold
		c.hold = nil
		if seq := p.token.Seq(); seq != phase1Seq {
			// Rule 9 is decided already (the sequence only grows): answer
			// without queueing, after rules 6 and 7.
			p.allocMu.Lock()
			fe := p.checkOwners(c, f)
			p.allocMu.Unlock()
			if fe != nil {
				return &refusal{*fe, statusRefused}, nil
			}
			return &refusal{*rule9(seq, phase1Seq), statusInvalid}, nil
		}
		c.log.Info("commit token was revoked by the lease; queueing again")
		h, err := p.token.Requeue(ctx, prev)
		if err != nil {
			return nil, errStopping
		}
		c.hold = h
	}
	return nil, nil
}

// allocLock is p.allocMu as taken by one commit: released at most once,
// so that a deferred unlock covers panics.
type allocLock struct {
	mu   *sync.Mutex
	held bool
}

// lock takes the lock unless held.
func (l *allocLock) lock() {
	if !l.held {
		l.mu.Lock()
		l.held = true
	}
}

// unlock releases the lock if held.
func (l *allocLock) unlock() {
	if l.held {
		l.held = false
		l.mu.Unlock()
	}
}

// admit decides rules 6, 7 and 9 of §5.5 for c's commit of f (oids sorted
// ascending) with the token pinned. It returns with l held only when the
// commit is admitted and is the first to store ROOT_OID: allocMu then stays
// held until announce, so root release (A5) cannot hand ROOT_OID out
// meanwhile (the caller applies that commit first, root.go).
func (p *commitPath) admit(l *allocLock, c *conn, phase1Seq uint64, f frames, sorted []uint64) *refusal {
	l.lock()
	if fe := p.checkOwners(c, f); fe != nil {
		l.unlock()
		return &refusal{*fe, statusRefused}
	}
	if !p.root.firstCommit(sorted) {
		l.unlock()
	}
	// Rule 9: only possible after a revocation.
	if seq := p.token.Seq(); seq != phase1Seq {
		l.unlock()
		return &refusal{*rule9(seq, phase1Seq), statusInvalid}
	}
	return nil
}

// announce publishes c's staged commit of the oids sorted (ascending): it
// takes them out of c's unused set (one pass, §9) under allocMu (taking l
// if not held), releases l, adds them to every other connection's invalid
// set (I1, I6) and only then passes the token on: with Hold.Handoff (the
// new holder runs first) when handoff is set, the commit's own next work
// being only its apply (see handoffPending). It returns the oids taken
// from the unused set, for restoreUnused if the commit is refused in
// Pending.Wait: the invalidations were then needless, never wrong (the
// others reload the record stored before).
func (p *commitPath) announce(l *allocLock, c *conn, sorted []uint64, handoff bool) []run {
	l.lock()
	p.root.committed(sorted)
	var taken []run
	if c.unusedN > 0 {
		taken = p.owners.removeSorted(sorted, c)
		c.unusedN -= runsLen(taken)
		if p.unusedOverLocked(0) {
			// Split runs of c's unused set took the list over: answer
			// the commit, then close c (its runs go back).
			c.endAfter = "unused sets over --max-unused-memory"
		}
	}
	l.unlock()
	rs := runsOfInto(c.commitMem.runs[:0], sorted)
	c.commitMem.runs = rs[:0]
	p.invalidate(rs, c, false)
	h := c.hold
	c.hold = nil
	if handoff {
		h.Handoff()
	} else {
		h.Done(true)
	}
	return taken
}

// flushPending is a Pending that tells whether its Wait waits for a group
// flush (engine.Pending.WaitsForFlush: durability sync).
type flushPending interface {
	WaitsForFlush() bool
}

// handoffPending reports whether the committer of p should pass the token
// with Hold.Handoff, yielding to the new holder: when its Wait only
// applies the commit (durability nosync or write-nosync). A waiter of a
// group flush may lead it, and every commit of that group waits for its
// leader, so it passes the token without yielding.
func handoffPending(p Pending) bool {
	f, ok := p.(flushPending)
	return ok && !f.WaitsForFlush()
}

// restoreUnused gives the oids taken (announce) back to c's unused set
// after its staged commit was refused: nothing was stored, so they are
// still the committer's (§5.5), and they are in nobody else's unused set
// (oids are handed out once, A3).
func (p *commitPath) restoreUnused(c *conn, taken []run) {
	p.allocMu.Lock()
	p.owners.restore(taken, c)
	c.unusedN += runsLen(taken)
	p.allocMu.Unlock()
}

// releaseUnused drops c's unused set when it closes, waking allocations
// waiting for ROOT_OID if c held it. The caller has unregistered c and
// still holds its token hold, if any (see Invariants).
func (p *commitPath) releaseUnused(c *conn) {
	p.allocMu.Lock()
	if c.unusedN > 0 {
		if p.owners.owner(record.RootOID) == c {
			p.root.released()
		}
		p.owners.removeOwner(c)
		c.unusedN = 0
	}
	p.allocMu.Unlock()
}

// countCommitted adds a commit of dataLen bytes to the bytes committed
// since the last automatic pack and starts a full collection when they
// reach Config.GCBytes.
func (p *commitPath) countCommitted(dataLen int, log *slog.Logger) {
	if p.cfg.GCBytes <= 0 {
		return
	}
	if p.gcAcc.Add(int64(dataLen)+8) >= p.cfg.GCBytes && p.st.Pack() {
		p.gcAcc.Store(0)
		log.Info("gcbytes reached: full collection started", "gcbytes", p.cfg.GCBytes)
	}
}

// runsLen returns the number of oids in rs.
func runsLen(rs []run) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.hi - r.lo
	}
	return n
}

// invalidate adds rs to the invalid set of every open connection except
// skip. Connections whose set would exceed the cap are closed (I7), once
// every set's removals have given way where the sets of all connections
// together are over theirs. A commit's rs never exceeds the caps alone
// (countRule, runsRule): only a set that was not emptied by a sync since
// earlier changes can go over them. removed marks oids removed by a
// collection: a set they would take over its cap is left without them
// instead (conn.addInvalid).
func (p *commitPath) invalidate(rs []run, skip *conn, removed bool) {
	if len(rs) == 0 {
		return
	}
	// Merge outside p.open.mu: a connection that opens meanwhile has loaded
	// nothing older than this change (it is visible already, I6), and
	// accepts, closes and other invalidations need not wait for the
	// merges.
	buf, _ := p.fanout.Get().(*[]*conn)
	if buf == nil {
		buf = new([]*conn)
	}
	p.open.mu.Lock()
	conns := (*buf)[:0]
	for c := range p.open.conns {
		if c != skip {
			conns = append(conns, c)
		}
	}
	p.open.mu.Unlock()
	n := len(conns)
	if removed {
		p.removalMu.RLock()
		for _, c := range conns {
			c.addInvalid(rs, addRemoved)
		}
		p.removalMu.RUnlock()
	} else {
		var retry []*conn
		for _, c := range conns {
			if c.addInvalid(rs, addChange) {
				retry = append(retry, c)
			}
		}
		if len(retry) > 0 {
			// Over the budget of all sets together: every set's removals
			// are forgotten, with no collection's fan-out under way to
			// bring more, so that a commit's changes, which must be
			// told, take their room rather than close connections (I2).
			p.removalMu.Lock()
			for _, c := range conns {
				c.forgetRemoved()
			}
			for _, c := range retry {
				c.addInvalid(rs, addChangeFinal)
			}
			p.removalMu.Unlock()
		}
	}
	clear(conns) // hold no closed connection
	*buf = conns[:0]
	p.fanout.Put(buf)
	if p.cfg.Observer != nil && n > 0 {
		var oids uint64
		for _, r := range rs {
			oids += r.hi - r.lo
		}
		p.cfg.Observer.Invalidated(oids, n)
	}
}

// errUnusedLimit marks an allocation refused for the unused sets' caps: the
// connection is closed (a limit, not a failure of the storage).
var errUnusedLimit = errors.New("unused oids over the limit")

// ownedRunBytes is what one run of the unused sets' list is counted as
// against MaxUnusedMemory (two oids and an owner).
const ownedRunBytes = 24

// unusedOverLocked reports whether the unused sets' list, with extra more
// runs, is over MaxUnusedMemory. p.allocMu is held.
func (p *commitPath) unusedOverLocked(extra int) bool {
	return int64(len(p.owners.runs)+extra)*ownedRunBytes > p.cfg.MaxUnusedMemory
}

// alloc hands n oids to c (A2–A6) and appends them to b. ctx ends the
// wait for a departing root holder (waitRootLocked).
func (p *commitPath) alloc(ctx context.Context, c *conn, n int, b []byte) ([]byte, error) {
	if n == 0 {
		return b, nil
	}
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	p.waitRootLocked(ctx, c)
	if c.unusedN+uint64(n) > uint64(p.cfg.MaxUnused) {
		return b, fmt.Errorf("%w: unused set of %d oids would exceed the limit of %d", errUnusedLimit, c.unusedN, p.cfg.MaxUnused)
	}
	if p.unusedOverLocked(1) {
		return b, fmt.Errorf("%w: the unused sets of all connections hold %d runs: another would take them over --max-unused-memory (%d bytes)",
			errUnusedLimit, len(p.owners.runs), p.cfg.MaxUnusedMemory)
	}
	b, took, err := p.takeRootLocked(c, b)
	if err != nil {
		return b, err
	}
	if took {
		n--
	}
	if n == 0 {
		return b, nil
	}
	var first uint64
	if p.st.ReadOnly() {
		if first, err = p.allocReadOnlyLocked(n); err != nil {
			return b, err
		}
	} else {
		first, err = p.reserve(n)
		if err != nil {
			return b, fmt.Errorf("allocating %d oids: %w", n, err)
		}
		if first, err = p.skipRootLocked(first); err != nil {
			return b, err
		}
	}
	for o := first; o < first+uint64(n); o++ {
		b = record.AppendOID(b, o)
	}
	p.owners.add(first, first+uint64(n), c)
	c.unusedN += uint64(n)
	return b, nil
}

// allocReadOnlyLocked hands out n oids from memory on a read-only storage
// (§8: never persisted, never committable) and returns the first.
// p.allocMu is held.
func (p *commitPath) allocReadOnlyLocked(n int) (uint64, error) {
	if !p.roInit {
		p.roNext, p.roInit = p.st.AllocCursor(), true
	}
	if p.roNext == record.RootOID {
		exists, err := p.rootExists()
		if err != nil {
			return 0, err
		}
		if exists {
			p.roNext++
		}
	}
	first := p.roNext
	p.roNext += uint64(n)
	return first, nil
}

// allocCursorLocked is the allocation cursor h (A4), counting oids handed
// out from memory on a read-only storage. p.allocMu is held.
func (p *commitPath) allocCursorLocked() uint64 {
	if p.roInit {
		return p.roNext
	}
	return p.st.AllocCursor()
}
