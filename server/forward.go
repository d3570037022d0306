package server

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// Site-to-site commands on the Durus port (durusbdb extensions, PROTOCOL.md
// §10): a replica of a replication group forwards its clients' commits and
// oid allocations to the master with them. Stock Durus clients never send
// these bytes.
const (
	// cmdForward: F int8 pos, int4 len, commit data (the frames of phase
	// 2) → status byte and forwardTokenLen bytes of token (zeros unless
	// 'O'). pos: the replica had followed the change entries below pos
	// when it sent its client the phase-1 invalidations.
	cmdForward = 'F'
	// cmdAllocate: A int4 n → 'O' int8 first (n oids from first on, in
	// no connection's unused set), or 'E'.
	cmdAllocate = 'A'
)

// forwardTokenLen is the token after the status of an F reply: the libdb
// commit token and the int8 sequence number of the run's change entry.
const forwardTokenLen = engine.TokenSize + 8

// Bounds of a forwarded commit on the replica: the exchange with the
// master (which may wait for its commit token and a quorum), and the wait
// until the replica has applied and followed the master's commit.
const (
	forwardTimeout      = 60 * time.Second
	appliedTimeout      = 30 * time.Second
	syncFollowerTimeout = time.Second // phase 1 on a replica: beyond, conflicts are only spurious
)

// maxForwardAlloc bounds the oids one A request may ask for.
const maxForwardAlloc = 1 << 16

// ErrForward wraps a failure to reach the master or to read its answer:
// the outcome of the forwarded commit is unknown, unless the error also
// wraps ErrNotSent.
var ErrForward = errors.New("server: forward to the master failed")

// ErrNotSent: the request never left this site (no master known, or the
// master could not be reached), so nothing was committed.
var ErrNotSent = errors.New("server: request not sent to the master")

// Forwarder is a Storage that may be a replica of a replication group
// (the engine's, through Engine): the server then forwards commits and oid
// allocations to the master and answers once the replica has applied them.
type Forwarder interface {
	// MasterAddr returns the master's Durus address and true when this
	// site is a replica (addr may be "" while no master is known).
	MasterAddr() (addr string, replica bool)
	// WaitReplicated waits until the master's commit of tok is applied
	// here and its oids are invalidated for this site's clients.
	WaitReplicated(ctx context.Context, tok engine.Token, timeout time.Duration) error
	// ChangesStarted is one more than the last change entry whose
	// invalidation started on this replica.
	ChangesStarted() uint64
	// ChangesReported is one more than the last change entry whose
	// invalidation reached every client of this replica.
	ChangesReported() uint64
	// FollowerMark is taken when a commit request arrives;
	// SyncFollowerFrom, with the token, returns once a read of the change
	// table begun after the mark has ended (bounded by timeout; one that
	// ran while the request queued for the token counts): every change
	// applied here before the mark is then invalidated for this site's
	// clients.
	FollowerMark() uint64
	SyncFollowerFrom(ctx context.Context, mark uint64, timeout time.Duration)
	// HoldForwarded makes loads of oids on this site wait until release
	// is called: the oids of a forwarded commit, from before they are
	// invalidated for the other clients until the commit is applied here
	// or known not to be (engine.DB.HoldForwarded).
	HoldForwarded(oids []uint64) (release func())
}

// HoldForwarded implements Forwarder.
func (e engineStorage) HoldForwarded(oids []uint64) func() { return e.db.HoldForwarded(oids) }

// FollowerMark implements Forwarder.
func (e engineStorage) FollowerMark() uint64 { return e.db.FollowerMark() }

// SyncFollowerFrom implements Forwarder.
func (e engineStorage) SyncFollowerFrom(ctx context.Context, mark uint64, timeout time.Duration) {
	e.db.SyncFollowerFrom(ctx, mark, timeout)
}

// conflictChecker is a master's Storage that can tell whether oids were
// committed after a replica's phase-1 position (engine.DB.ChangedSince).
type conflictChecker interface {
	ChangedSince(pos uint64, oids []uint64) (bool, error)
}

// tokenPending is a Pending that knows the run that applied it.
type tokenPending interface {
	Token() engine.Token
}

// forwardPool keeps idle connections to the master, by address, and
// counts the forwarded commits announced on this replica.
type forwardPool struct {
	mu   sync.Mutex
	idle map[string][]*wire.Conn
	busy map[*wire.Conn]string // exchanges waiting for the master's answer, by the master's address

	// announced counts the forwarded commits announced (oids held and
	// invalidated, token passed): a committer compares it with its own
	// number before dropping its own oids from its invalid set.
	announced atomic.Uint64
}

// get returns an idle connection to addr or dials one.
func (p *forwardPool) get(addr string) (*wire.Conn, error) {
	p.mu.Lock()
	if l := p.idle[addr]; len(l) > 0 {
		wc := l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		p.mu.Unlock()
		return wc, nil
	}
	p.mu.Unlock()
	wc, err := wire.Dial(addr, forwardTimeout)
	if err != nil {
		return nil, err
	}
	if err := wc.Version(); err != nil {
		wc.Close()
		return nil, fmt.Errorf("version handshake with %s: %w", addr, err)
	}
	return wc, nil
}

// put returns a healthy connection to the pool.
func (p *forwardPool) put(addr string, wc *wire.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = make(map[string][]*wire.Conn)
	}
	if len(p.idle[addr]) >= 16 {
		wc.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], wc)
}

// close closes every idle connection.
func (p *forwardPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.idle {
		for _, wc := range l {
			wc.Close()
		}
	}
	p.idle = nil
}

// exchange sends req to the master at addr over a pooled connection and
// reads n reply bytes. Any failure wraps ErrForward.
func (p *forwardPool) exchange(addr string, n int, req ...[]byte) ([]byte, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: %w: no master known", ErrForward, ErrNotSent)
	}
	wc, err := p.get(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %s: %w", ErrForward, ErrNotSent, addr, err)
	}
	p.mu.Lock()
	if p.busy == nil {
		p.busy = make(map[*wire.Conn]string)
	}
	p.busy[wc] = addr
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.busy, wc)
		p.mu.Unlock()
	}()
	if err := wc.Send(req...); err != nil {
		wc.NetConn().Close()
		return nil, fmt.Errorf("%w: send to %s: %w", ErrForward, addr, err)
	}
	b, err := wc.ReadFull(n)
	if err != nil {
		wc.NetConn().Close()
		return nil, fmt.Errorf("%w: answer of %s: %w", ErrForward, addr, err)
	}
	p.put(addr, wc)
	return b, nil
}

// abandonExcept closes every connection to a master other than master
// (every one when replica is false: this site is the master now), the
// exchanges waiting on them included: their outcome is unknown, and the
// commits' connections are closed without a reply rather than hold their
// oids until forwardTimeout for a master that was replaced. It returns
// how many exchanges it cut.
func (p *forwardPool) abandonExcept(master string, replica bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for wc, addr := range p.busy {
		if !replica || addr != master {
			wc.NetConn().Close()
			n++
		}
	}
	for addr, l := range p.idle {
		if !replica || addr != master {
			for _, wc := range l {
				wc.Close()
			}
			delete(p.idle, addr)
		}
	}
	return n
}

// masterWatchInterval is how often a replica's server looks for a new
// master (watchMaster): the most a failover adds to a forward's wait.
const masterWatchInterval = 100 * time.Millisecond

// watchMaster runs until stop is closed: when the master f names changes
// (a failover, or this site elected), forwards still waiting on the old
// one are abandoned (forwardPool.abandonExcept).
func (s *Server) watchMaster(f Forwarder, stop <-chan struct{}) {
	t := time.NewTicker(masterWatchInterval)
	defer t.Stop()
	last, wasReplica := f.MasterAddr()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		addr, replica := f.MasterAddr()
		if addr == last && replica == wasReplica {
			continue
		}
		if n := s.fwd.abandonExcept(addr, replica); n > 0 {
			s.log.Warn("the master changed: commits forwarded to the old one abandoned; their outcome is unknown and their connections are closed without a reply",
				"old_master", last, "new_master", addr, "replica", replica, "abandoned", n)
		}
		last, wasReplica = addr, replica
	}
}

// forwarder returns the storage as a Forwarder and the master's address
// when this site is a replica.
func (s *Server) forwarder() (Forwarder, string, bool) {
	f, ok := s.st.(Forwarder)
	if !ok {
		return nil, "", false
	}
	addr, replica := f.MasterAddr()
	return f, addr, replica
}

// allocOIDs hands out n oids: from the storage, or on a replica from the
// master (A), whose allocation is replicated durably.
func (s *Server) allocOIDs(n int) (uint64, error) {
	_, addr, replica := s.forwarder()
	if !replica {
		return s.st.AllocOIDs(n)
	}
	b, err := s.fwd.exchange(addr, 9, []byte{cmdAllocate}, binary.BigEndian.AppendUint32(nil, uint32(n)))
	if err != nil {
		return 0, err
	}
	if b[0] != statusOK {
		return 0, fmt.Errorf("%w: the master refused to allocate %d oids (%q)", ErrForward, n, b[0])
	}
	return binary.BigEndian.Uint64(b[1:]), nil
}

// doAllocate answers A (on the master): n oids for a replica's client,
// owned by no connection here (the replica tracks its clients' unused
// sets).
func (c *conn) doAllocate() error {
	n, err := c.readUint32()
	if err != nil {
		return err
	}
	if n == 0 || n > maxForwardAlloc {
		c.log.Warn("closing connection: forwarded allocation count out of range", "count", n)
		c.observeError(ErrProtocol)
		return &protoEnd{"bad A count"}
	}
	var first uint64
	if c.s.st.ReadOnly() {
		err = ErrReplica
	} else {
		// The run skips ROOT_OID once the root is stored (C31), as M does.
		c.s.allocMu.Lock()
		first, err = c.s.st.AllocOIDs(int(n))
		if err == nil {
			first, err = c.s.skipRootLocked(first)
		}
		c.s.allocMu.Unlock()
	}
	if err != nil {
		c.log.Warn("forwarded allocation refused", "count", n, "err", err)
		_, err = c.w.Write(append([]byte{statusRefused}, make([]byte, 8)...))
		return err
	}
	_, err = c.w.Write(binary.BigEndian.AppendUint64([]byte{statusOK}, first))
	return err
}

// doForward answers F (on the master): a replica's client's commit, run
// through the commit path as a local client's would be (token, rules,
// invalidations of this site's clients), answered with the status and the
// token of the run that applied it.
func (c *conn) doForward() error {
	pos, err := c.readOID() // int8, like an oid
	if err != nil {
		return err
	}
	c.fwd, c.fwdPos = true, pos
	c.fwdTok = engine.Token{}
	defer func() { c.fwd = false }()
	return c.commitPhases(false)
}

// commitReply writes the status of a commit: for a forwarded one (F)
// followed by the token of its run.
func (c *conn) commitReply(status byte) error {
	if err := c.w.WriteByte(status); err != nil || !c.fwd {
		return err
	}
	b := make([]byte, 0, forwardTokenLen)
	if status == statusOK {
		b = append(b, c.fwdTok.Commit[:]...)
		b = binary.BigEndian.AppendUint64(b, c.fwdTok.Change)
	} else {
		b = b[:forwardTokenLen]
	}
	_, err := c.w.Write(b)
	return err
}

// forwardCommit decides, on a replica, a commit whose data has arrived:
// rules 3–5, 7 and 8 here, the rest by the master, to which the data is
// forwarded (F). As a single server does with a staged commit, it
// announces the commit before the token passes (announceForward: its
// oids held, so that loads of them here wait, and invalidated for the
// other clients), then passes the token on while the commit travels, so
// that the next client's phase 1 need not wait for the master. On 'O' it
// waits until this replica has applied the master's commit and
// invalidated it for its other clients (read-your-writes), then answers.
// A lost master or a wait that times out closes the connection without a
// reply: the outcome is unknown. The hold is released on every path.
func (c *conn) forwardCommit(f Forwarder, addr string, phase1Seq uint64, data []byte) error {
	s := c.s
	fr, sorted, fe := s.checkFrames(data)
	c.ctimes.records = len(fr.recs)
	if fe != nil {
		return c.refuse(statusRefused, fe, len(data))
	}
	if refused, err := s.pin(s.hard, c, phase1Seq, fr); err != nil {
		return err
	} else if refused != nil {
		return c.refuse(refused.status, &refused.frameError, len(data))
	}
	if fe = s.checkForeignOwners(c, fr); fe != nil {
		return c.refuse(statusRefused, fe, len(data))
	}
	release := f.HoldForwarded(sorted)
	defer release()
	mine := s.fwd.announced.Add(1)
	s.announceForward(c, sorted)
	b, err := s.fwd.exchange(addr, 1+forwardTokenLen, []byte{cmdForward},
		binary.BigEndian.AppendUint64(nil, c.fwdPos),
		binary.BigEndian.AppendUint32(nil, uint32(len(data))), data)
	if errors.Is(err, ErrNotSent) {
		return c.refuse(statusRefused, &frameError{rule: 11, msg: "this site is a replica and cannot reach the master: " + err.Error()}, len(data))
	}
	if err != nil {
		c.log.Error("commit forwarded to the master: no answer; outcome unknown, closing connection without a reply", "master", addr, "err", err)
		return &protoEnd{"forward to the master failed (commit outcome unknown)"}
	}
	if status := b[0]; status != statusOK {
		c.log.Warn("commit forwarded to the master was refused", "master", addr, "reply", string(rune(status)))
		c.observeCommit(status, 0, 0)
		return c.w.WriteByte(status)
	}
	var tok engine.Token
	copy(tok.Commit[:], b[1:])
	tok.Change = binary.BigEndian.Uint64(b[1+engine.TokenSize:])
	tw := time.Now()
	if err := f.WaitReplicated(s.hard, tok, appliedTimeout); err != nil {
		c.log.Error("commit forwarded to the master: not applied here in time; outcome unknown here, closing connection without a reply",
			"change", tok.Change, "err", err)
		return &protoEnd{"forwarded commit not applied here (outcome unknown)"}
	}
	if sorted[0] == record.RootOID {
		// The first commit of the root: an allocation may be waiting,
		// under allocMu, for a load of ROOT_OID (rootExists); let it
		// through before taking allocMu. Once per database.
		release()
	}
	s.forwardCommitted(c, sorted, f.ChangesStarted() == tok.Change+1 && s.fwd.announced.Load() == mine)
	c.observeCommit(statusOK, 0, time.Since(tw))
	return c.w.WriteByte(statusOK)
}

// announceForward is the replica's counterpart of announce, with the
// token pinned and the oids sorted already held by the caller
// (Forwarder.HoldForwarded: loads of them here wait until the commit is
// applied here or known not to be): it invalidates them for every other
// connection and only then passes the token (Done(true): a client whose
// lease was revoked meanwhile is refused by rule 9, its view missed this
// commit). The oids stay in c's unused set until the master answers O
// (forwardCommitted).
func (p *commitPath) announceForward(c *conn, sorted []uint64) {
	p.invalidate(runsOf(sorted), c, false)
	c.hold.Done(true)
	c.hold = nil
}

// forwardCommitted is the bookkeeping of a forwarded commit answered O:
// its oids leave c's unused set under allocMu, and, when dropOwn, the
// change follower's invalidation of them for c itself is dropped (the
// committer, as on a single server, is not told of its own commit). The
// caller sets dropOwn when nothing can have invalidated them for c since:
// no later change entry has started here, and no later forward was
// announced (another forward's oids, invalidated for c meanwhile, may
// overlap these and reach the master after this commit).
func (p *commitPath) forwardCommitted(c *conn, sorted []uint64, dropOwn bool) {
	p.allocMu.Lock()
	p.root.committed(sorted)
	if c.unusedN > 0 {
		c.unusedN -= runsLen(p.owners.removeSorted(sorted, c))
		if p.unusedOverLocked(0) {
			c.endAfter = "unused sets over --max-unused-memory" // as announce
		}
	}
	p.allocMu.Unlock()
	if !dropOwn {
		return
	}
	c.mu.Lock()
	c.invalid.removeSorted(sorted)
	c.countRunsLocked()
	c.invalidN.Store(c.invalid.len() + c.removed.len())
	c.mu.Unlock()
}

// checkForwarded decides rule 9 for a replica's forwarded commit on the
// master: an oid of sorted committed after the replica's phase-1 position
// pos (the F request's) is a change its client never saw, so the commit
// is refused as a conflict (I). The token is pinned.
func (p *commitPath) checkForwarded(pos uint64, sorted []uint64) (*frameError, error) {
	cc, ok := p.st.(conflictChecker)
	if !ok {
		return nil, nil
	}
	changed, err := cc.ChangedSince(pos, sorted)
	if err != nil {
		return nil, fmt.Errorf("server: forwarded commit: %w", err)
	}
	if changed {
		return &frameError{rule: 9, msg: fmt.Sprintf("an oid of the commit was committed after the replica's phase 1 (change %d)", pos)}, nil
	}
	return nil, nil
}

// checkForeignOwners applies rule 7 of §5.5 on a replica, under
// allocMu: no oid of f is in another open connection's unused set (the
// master, which decides rule 6, knows nothing of this site's sets).
func (p *commitPath) checkForeignOwners(c *conn, f frames) *frameError {
	p.allocMu.Lock()
	defer p.allocMu.Unlock()
	for i, oid := range f.oids {
		if ow := p.owners.owner(oid); ow != nil && ow != c {
			return &frameError{rule: 7, off: f.offs[i], oid: oid, hasOID: true,
				msg: fmt.Sprintf("oid handed to another open connection (conn %d)", ow.id)}
		}
	}
	return nil
}

// removeSorted removes the ascending, distinct oids from the set.
func (s *runSet) removeSorted(sorted []uint64) {
	if len(sorted) == 0 || s.n == 0 {
		return
	}
	old, _ := s.take()
	var out []run
	for _, r := range old {
		lo := r.lo
		i, _ := slices.BinarySearch(sorted, r.lo)
		for ; i < len(sorted) && sorted[i] < r.hi; i++ {
			if sorted[i] > lo {
				out = append(out, run{lo, sorted[i]})
			}
			lo = sorted[i] + 1
		}
		if lo < r.hi {
			out = append(out, run{lo, r.hi})
		}
	}
	s.addRuns(out)
}
