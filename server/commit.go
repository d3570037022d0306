package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
)

// minFrame is the smallest commit frame length: an oid and a 12-byte record
// header (§5.3).
const minFrame = 20

// initialDataBuf is the first buffer for commit data; it grows at most
// fourfold as bytes arrive (nextDataBuf), so a claimed length never
// allocates more than about four times what was sent.
const initialDataBuf = 64 << 10

// nextDataBuf is the size of the buffer that follows one of cur bytes for
// commit data of n bytes: the smallest of n, ⌈n/4⌉, ⌈n/16⌉, … above cur.
// Growing along that sequence ends at exactly n, and its buffers, all
// charged to the budget while the commit is decided (the outgrown ones
// are garbage until a collection), sum to at most 4/3·n plus the first.
// (Growing fourfold from the first, a QA round measured up to 2.3·n: a
// 24 MB commit was refused under a 32 MiB budget.)
func nextDataBuf(n, cur int) int {
	s := n
	for (s+3)/4 > cur {
		s = (s + 3) / 4
	}
	return s
}

// DataCharge is what n bytes of commit data are charged at most to the
// budget of bytes in flight (Config.MaxInflight): the sum of the buffers
// the server grows for them, at most 4/3·n + 64 KiB. A commit whose
// charge is over the whole budget is refused at once.
func DataCharge(n int) int {
	if n <= 0 {
		return 0
	}
	sum := min(n, initialDataBuf)
	for cur := sum; cur < n; {
		cur = nextDataBuf(n, cur)
		sum += cur
	}
	return sum
}

// commitTimes are the instants of the commit in progress, for the
// observer.
type commitTimes struct {
	start   time.Time // C received
	token   time.Time // token held
	data    time.Time // commit data received
	records int       // frames parsed
	bytes   int64     // phase 2 length
}

// observeCommit reports the decided commit in progress to the observer.
func (c *conn) observeCommit(status byte, rule int, durable time.Duration) {
	if c.obs == nil {
		return
	}
	ct := &c.ctimes
	now := time.Now()
	r := CommitResult{Status: status, Rule: rule, Records: ct.records, Bytes: ct.bytes,
		TokenWait: ct.token.Sub(ct.start), Durable: durable, Total: now.Sub(ct.start)}
	if !ct.data.IsZero() {
		r.Apply = now.Sub(ct.data) - durable
	}
	c.obs.Commit(r)
}

// doCommit runs both phases of C (§5.3–§5.6).
func (c *conn) doCommit() error { return c.commitPhases(true) }

// commitPhases runs a commit: C (phase1: the invalidations are sent
// first) or a replica's forwarded F (no phase 1 reply; the invalidations
// are dropped, the replica has its own).
func (c *conn) commitPhases(phase1 bool) error {
	s := c.s
	c.ctimes = commitTimes{start: time.Now()}
	phase1Seq, err := c.commitPhase1(phase1)
	if err != nil {
		return err
	}

	// Phase 2. A failure or disconnect from here on stores nothing; serve
	// releases the token.
	n, err := c.readUint32()
	if err != nil {
		return err
	}
	if n == 0 {
		c.releaseToken() // no reply (§5.3)
		return nil
	}
	c.ctimes.bytes = int64(n)
	c.startDataDeadline(n)
	if rule := s.lengthRule(n); rule != 0 {
		err := c.refuseUnread(rule, n)
		c.dataDL = time.Time{}
		return err
	}
	data, charged, err := c.readData(int(n))
	c.dataDL = time.Time{}
	if errors.Is(err, ErrInflight) {
		c.observeCommit(statusRefused, 1, 0)
		return c.commitReply(statusRefused)
	}
	if err != nil {
		return err
	}
	// Rule 1's count of records, before the frames are charged or parsed:
	// refused, the commit has announced nothing (countRule).
	nf := countFrames(data)
	if fe := s.countRule(nf); fe != nil {
		s.inflight.release(charged)
		return c.refuse(statusRefused, fe, len(data))
	}
	err = c.chargeFrames(data, nf, charged)
	if err == nil {
		charged += int64(nf) * frameCost
	}
	defer c.s.inflight.release(charged)
	if errors.Is(err, ErrInflight) {
		c.releaseToken()
		c.log.Warn("commit refused: bytes in flight over the budget (--max-inflight) with the cost of its frames",
			"len", n, "frames", nf, "err", err)
		c.observeError(ErrLimit)
		c.observeCommit(statusRefused, 1, 0)
		return c.commitReply(statusRefused)
	}
	if err != nil {
		return err
	}
	c.ctimes.data = time.Now()
	if f, addr, replica := s.forwarder(); replica && !c.fwd {
		return c.forwardCommit(f, addr, phase1Seq, data)
	}
	return c.apply(phase1Seq, data)
}

// commitPhase1 acquires the commit token and sends the invalid set (C),
// or drops it (F: phase1 false). It returns the token's sequence number at
// phase 1 (rule 9).
func (c *conn) commitPhase1(phase1 bool) (uint64, error) {
	s := c.s
	// Send earlier pipelined replies before possibly waiting.
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	// On a replica, a mark of the change follower's reads so far: every
	// load of this client was answered before its C was read, so a
	// follower read that begins after this mark (even while C waits for
	// the token) covers every change the client could have loaded.
	f, _, replica := s.forwarder()
	var mark uint64
	if replica && phase1 {
		mark = f.FollowerMark()
	}
	hold, err := s.token.Acquire(s.soft)
	if err != nil {
		return 0, errStopping
	}
	c.hold = hold
	c.ctimes.token = time.Now()
	phase1Seq := hold.Seq()
	if f2, _, replica2 := s.forwarder(); replica2 && phase1 {
		// What this client can load is in its invalid set, and every
		// change entry below this position is (the master checks the
		// ones after: checkForwarded). A site that became a replica
		// while C waited takes its mark now.
		if !replica {
			mark = f2.FollowerMark()
		}
		f2.SyncFollowerFrom(s.soft, mark, syncFollowerTimeout)
		c.fwdPos = f2.ChangesReported()
	}
	if !phase1 {
		c.takeInvalid()
	} else if err := c.writeInvalid(); err != nil {
		return 0, err
	}
	return phase1Seq, nil
}

// startDataDeadline bounds the time the n bytes of commit data may take to
// arrive: RequestTimeout plus n at MinReadRate from now (§3.2, §9). The
// per-read RequestTimeout alone lets a client holding its charge of the
// budget of bytes in flight send a byte every few seconds for ever.
func (c *conn) startDataDeadline(n uint32) {
	cfg := &c.s.cfg
	if cfg.MinReadRate <= 0 {
		return
	}
	d := cfg.RequestTimeout + time.Duration(float64(n)/float64(cfg.MinReadRate)*float64(time.Second))
	c.dataDL = time.Now().Add(d)
}

// dataWindow is the bytes of commit data that must arrive within each
// RequestTimeout (MinReadRate·RequestTimeout), or 0 if MinReadRate is
// negative.
func (c *conn) dataWindow() int {
	cfg := &c.s.cfg
	if cfg.MinReadRate <= 0 {
		return 0
	}
	return int(min(float64(cfg.MinReadRate)*cfg.RequestTimeout.Seconds(), MaxCommitLimit))
}

// dataReadErr is the error of a failed read of commit data: when the
// bound of startDataDeadline has passed, the connection is closed with a
// line saying so; other errors are returned as they are.
func (c *conn) dataReadErr(err error, got, n int) error {
	if c.dataDL.IsZero() || !errors.Is(err, os.ErrDeadlineExceeded) || c.stopping.Load() || time.Now().Before(c.dataDL) {
		return err
	}
	c.log.Warn("closing connection: commit data arriving too slowly (below --min-read-rate)",
		"len", n, "received", got, "min_read_rate", c.s.cfg.MinReadRate, "request_timeout", c.s.cfg.RequestTimeout)
	c.observeError(ErrTimeout)
	return &protoEnd{"commit data too slow"}
}

// refuseUnread answers a commit refused by rule 1 or 2 of §5.5
// (commitPath.lengthRule): it releases the token, discards the n bytes of
// data and replies E.
func (c *conn) refuseUnread(rule int, n uint32) error {
	c.releaseToken()
	if rule == 1 {
		c.log.Warn("commit refused: len above the commit limit; discarding the data (rule 1)",
			"len", n, "max", c.s.cfg.MaxCommit)
	}
	if m, err := io.CopyN(io.Discard, c.r, int64(n)); err != nil {
		return c.dataReadErr(err, int(m), int(n))
	}
	if rule == 2 {
		c.log.Warn("commit refused: read-only server (rule 2)", "len", n)
	}
	c.observeCommit(statusRefused, rule, 0)
	return c.commitReply(statusRefused)
}

// readData reads the n bytes of commit data, growing the buffer only as
// bytes arrive (§9), at most fourfold each time (nextDataBuf), and
// charging it to the budget of bytes in flight (Config.MaxInflight).
// Outgrown buffers stay charged until the commit ends (they are garbage
// until the next collection), so the charge, at most 4/3 n + 64 KiB
// (DataCharge), bounds the memory the commit costs. It returns the data
// and the bytes charged, which the caller releases once the commit is
// decided. If the buffer cannot grow within the budget in InflightWait, or
// its buffers would need more than the whole budget (refused at once), the
// token is released, the rest of the data is discarded, nothing stays
// charged and the error wraps ErrInflight (the caller answers E).
func (c *conn) readData(n int) ([]byte, int64, error) {
	b := c.s.inflight
	if need := int64(DataCharge(n)); need > b.limit {
		return c.discardData(n, 0, fmt.Errorf("server: commit data of %d bytes needs %d bytes in flight for its buffers, more than the whole budget of %d: %w",
			n, need, b.limit, ErrInflight))
	}
	var charged int64
	grow := func(size int) error {
		if err := b.acquireHolding(c.s.soft, int64(size), charged, c.s.cfg.InflightWait); err != nil {
			b.release(charged)
			charged = 0
			if !errors.Is(err, ErrInflight) {
				return errStopping // the wait was ended by shutdown
			}
			return err
		}
		charged += int64(size)
		return nil
	}
	if err := grow(min(n, initialDataBuf)); err != nil {
		if err == errStopping {
			return nil, 0, err
		}
		return c.discardData(n, 0, err)
	}
	buf := make([]byte, min(n, initialDataBuf))
	got := 0
	// Data longer than one window (MinReadRate·RequestTimeout) must bring
	// a window's worth, or the rest, within RequestTimeout of the last
	// window's end: bounded by startDataDeadline alone, a client could
	// send all but a few bytes of a large commit at once and then hold
	// its charge for len/MinReadRate.
	win, winGot := c.dataWindow(), 0
	if win > 0 && n > win {
		c.dataDL = time.Now().Add(c.s.cfg.RequestTimeout)
	}
	for got < n {
		if got == len(buf) {
			size := nextDataBuf(n, len(buf))
			if err := grow(size); err != nil {
				if err == errStopping {
					return nil, 0, err
				}
				return c.discardData(n, got, err)
			}
			nb := make([]byte, size)
			copy(nb, buf[:got])
			buf = nb
		}
		m, err := c.r.Read(buf[got:])
		got += m
		if err != nil {
			b.release(charged)
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, c.dataReadErr(err, got, n)
		}
		if win > 0 && n > win && got-winGot >= win {
			winGot = got
			c.dataDL = time.Now().Add(c.s.cfg.RequestTimeout)
		}
	}
	return buf, charged, nil
}

// frameCost is what each frame of a commit is charged to the budget of
// bytes in flight beyond its data: the server's parse keeps 48 bytes a
// frame (a record slice, the oid, the offset and the sorted oid) while the
// commit is decided, and the engine's staging and apply more. Measured
// with BenchmarkCommitFrameCost on 200,000 frames of 24 bytes, beyond the
// data: refused (rule 5) 47 bytes allocated, 40 at the heap's peak;
// accepted on bdb 173 and 164; on leveldb 470 and 381 (with the memtable
// the storage keeps).
const frameCost = 256

// chargeFrames charges the frames of data, frameCost each, to the budget
// of bytes in flight, before they are parsed: a commit of many tiny frames
// costs several times its data (a 200 MiB commit of 24-byte frames took
// 1.5 GB unaccounted). nf is their number (countFrames: a scan of their
// lengths, allocating nothing), held the commit's data charge; the caller
// releases nf·frameCost when the commit is decided (nothing is charged on
// error). The error wraps ErrInflight if there is
// no room within InflightWait (at once if the data and the frames need
// more than the whole budget), or is errStopping.
func (c *conn) chargeFrames(data []byte, nf int, held int64) error {
	n := int64(nf) * frameCost
	if n == 0 {
		return nil
	}
	b := c.s.inflight
	if held+n > b.limit {
		return fmt.Errorf("server: %d bytes of commit data and %d frames (%d bytes in flight at %d a frame), more than the whole budget of %d: %w",
			len(data), nf, n, frameCost, b.limit, ErrInflight)
	}
	if err := b.acquireHolding(c.s.soft, n, held, c.s.cfg.InflightWait); err != nil {
		if !errors.Is(err, ErrInflight) {
			return errStopping // the wait was ended by shutdown
		}
		return fmt.Errorf("server: commit of %d frames: %w", nf, err)
	}
	return nil
}

// discardData refuses a commit whose data does not fit in the budget of
// bytes in flight: it releases the token, logs why and reads the n−got
// bytes left without keeping them. The error is why (wrapping ErrInflight),
// or the read's.
func (c *conn) discardData(n, got int, why error) ([]byte, int64, error) {
	c.releaseToken()
	c.log.Warn("commit refused: bytes in flight over the budget (--max-inflight); discarding the data",
		"len", n, "err", why)
	c.observeError(ErrLimit)
	if m, err := io.CopyN(io.Discard, c.r, int64(n-got)); err != nil {
		return nil, 0, c.dataReadErr(err, got+int(m), n)
	}
	return nil, 0, why
}

// frameError is a refused commit: the rule of §5.5, the offending oid and the
// byte offset of its frame in the commit data.
type frameError struct {
	rule   int
	off    int
	oid    uint64
	hasOID bool
	msg    string
}

// frames is a parsed commit: records in frame order, with their oids and
// frame offsets.
type frames struct {
	recs [][]byte
	oids []uint64
	offs []int
}

// parseFrames checks rules 3 and 4 of §5.5 over the whole data: first that
// the frames fill it exactly with flen ≥ 20, then R1–R4 for each record.
func parseFrames(data []byte) (frames, *frameError) {
	return parseFramesInto(frames{}, data)
}

// parseFramesInto is parseFrames appending the oids and offsets to f's
// (emptied) slices, so that a connection reuses them from commit to
// commit; recs is always a new slice (the storage may keep the records).
func parseFramesInto(f frames, data []byte) (frames, *frameError) {
	// Sized once (countFrames): slices grown by append would allocate
	// about four times their final size on the way (FrameCost).
	nf := countFrames(data)
	f.recs = make([][]byte, 0, nf)
	if cap(f.oids) < nf {
		f.oids = make([]uint64, 0, nf)
	}
	if cap(f.offs) < nf {
		f.offs = make([]int, 0, nf)
	}
	f.oids, f.offs = f.oids[:0], f.offs[:0]
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return f, &frameError{rule: 3, off: off, msg: fmt.Sprintf("%d bytes left after the last frame, too few for a frame length", len(data)-off)}
		}
		flen := binary.BigEndian.Uint32(data[off:])
		if flen < minFrame {
			return f, &frameError{rule: 3, off: off, msg: fmt.Sprintf("frame length %d below %d", flen, minFrame)}
		}
		if left := len(data) - off - 4; uint64(flen) > uint64(left) {
			fe := &frameError{rule: 3, off: off,
				msg: fmt.Sprintf("frame length %d runs past the commit data (%d bytes left)", flen, left)}
			if left >= 8 { // the oid is there to name; otherwise the data ends inside it
				fe.oid, fe.hasOID = record.OID(data[off+4:]), true
			}
			return f, fe
		}
		f.oids = append(f.oids, record.OID(data[off+4:]))
		f.recs = append(f.recs, data[off+12:off+4+int(flen)])
		f.offs = append(f.offs, off)
		off += 4 + int(flen)
	}
	for i, rec := range f.recs {
		if _, err := record.ParseFor(f.oids[i], rec); err != nil {
			return f, &frameError{rule: 4, off: f.offs[i], oid: f.oids[i], hasOID: true, msg: err.Error()}
		}
	}
	return f, nil
}

// countFrames returns the number of whole frames at the start of data,
// those parseFrames takes before it finds the data malformed (rule 3), if
// it does: a scan of the frame lengths that allocates nothing.
func countFrames(data []byte) int {
	n := 0
	for off := 0; len(data)-off >= 4; n++ {
		flen := binary.BigEndian.Uint32(data[off:])
		if flen < minFrame || uint64(flen) > uint64(len(data)-off-4) {
			break
		}
		off += 4 + int(flen)
	}
	return n
}

// refuse releases the token, logs why the commit was refused and replies
// status (E or I): nothing stored, unused set unchanged, connection open.
func (c *conn) refuse(status byte, fe *frameError, dataLen int) error {
	c.releaseToken()
	attrs := []any{"rule", fe.rule, "reply", string(rune(status)), "len", dataLen}
	if fe.hasOID {
		attrs = append(attrs, "oid", fe.oid, "offset", fe.off)
	}
	c.log.Warn("commit refused: "+fe.msg, attrs...)
	c.observeCommit(status, fe.rule, 0)
	return c.commitReply(status)
}

// apply decides a commit whose data has fully arrived (rules 3–12 of §5.5)
// and replies. phase1Seq is the token's sequence number when phase 1 was
// granted (rule 9). The token is held (or was revoked) on entry and is
// released before waiting for durability.
func (c *conn) apply(phase1Seq uint64, data []byte) error {
	s := c.s
	defer c.commitMem.trim()
	f, sorted, fe := s.checkFramesInto(&c.commitMem, data)
	c.ctimes.records = len(f.recs)
	if fe != nil {
		return c.refuse(statusRefused, fe, len(data))
	}
	refused, err := s.pin(s.hard, c, phase1Seq, f)
	if err != nil {
		return err
	}
	if refused != nil {
		return c.refuse(refused.status, &refused.frameError, len(data))
	}
	if c.fwd {
		fe, err := s.checkForwarded(c.fwdPos, sorted)
		if err != nil {
			return c.commitFailed(err, len(data))
		}
		if fe != nil {
			return c.refuse(statusInvalid, fe, len(data))
		}
	}
	return c.stage(phase1Seq, f, sorted, len(data))
}

// stage decides rules 6, 7, 9, 10 and 11 with the token pinned, stages the
// commit, announces it (unused set, invalidations), passes the token on
// and then waits for durability and replies.
func (c *conn) stage(phase1Seq uint64, f frames, sorted []uint64, dataLen int) error {
	s := c.s
	// The deferred unlock covers panics while the root's first commit
	// holds allocMu.
	l := allocLock{mu: &s.allocMu}
	defer l.unlock()
	if r := s.admit(&l, c, phase1Seq, f, sorted); r != nil {
		return c.refuse(r.status, &r.frameError, dataLen)
	}

	// Staged (queued in the engine): what it stores is known, so the token
	// can pass on now; the writes happen in Wait, batched with the commits
	// staged meanwhile. Loads of these oids wait for them. A refusal here
	// (rule 10 or 11) has no effect at all: nothing was invalidated, no
	// oid left the unused set and the sequence did not move.
	pend, err := s.st.Stage(s.hard, f.recs)
	if err != nil {
		l.unlock()
		return c.commitFailed(err, dataLen)
	}
	if l.held {
		// The first record of the root: applied before the root counts as
		// stored (A5), with allocMu and the token held (once per database).
		if err := pend.Wait(s.hard); err != nil {
			l.unlock()
			return c.waitFailed(err, dataLen)
		}
	}
	taken := s.announce(&l, c, sorted, handoffPending(pend))
	s.countCommitted(dataLen, c.log)
	return c.awaitDurable(pend, taken, dataLen)
}

// awaitDurable waits, without the token, for the staged commit p to be
// applied and durable (one transaction and one flush cover many commits)
// and replies. If p is refused, the oids taken from c's unused set go
// back.
func (c *conn) awaitDurable(p Pending, taken []run, dataLen int) error {
	s := c.s
	tw := time.Now()
	if err := p.Wait(s.hard); err != nil {
		if !errors.Is(err, ErrNotDurable) && !errors.Is(err, ErrNotAcked) && s.hard.Err() == nil {
			// Refused: nothing stored, so the oids are still the
			// committer's (§5.5).
			s.restoreUnused(c, taken)
		}
		return c.waitFailed(err, dataLen)
	}
	if tp, ok := p.(tokenPending); ok {
		c.fwdTok = tp.Token()
	}
	c.observeCommit(statusOK, 0, time.Since(tw))
	return c.commitReply(statusOK)
}

// waitFailed answers a commit whose Pending.Wait failed. When the wait was
// cut short by the shutdown timeout the outcome is unknown (the storage may
// still apply the commit, which stays queued): the connection is closed
// without a reply, since E could be a lie. Otherwise as commitFailed.
func (c *conn) waitFailed(err error, dataLen int) error {
	if herr := c.s.hard.Err(); herr != nil && errors.Is(err, herr) {
		c.releaseToken()
		c.log.Warn("shutdown timeout while the commit was being applied: outcome unknown; closing connection without a reply", "err", err)
		return &protoEnd{"shutdown (commit outcome unknown)"}
	}
	return c.commitFailed(err, dataLen)
}

// commitFailed answers a commit the storage did not take or apply: I for a
// dangling reference (rule 10), E for a storage failure (rule 11); a commit
// applied but not made durable, or not acknowledged by a replication quorum,
// closes the connection without a reply, since neither answer would be
// true.
func (c *conn) commitFailed(err error, dataLen int) error {
	switch {
	case errors.Is(err, ErrDangling):
		return c.refuse(statusInvalid, &frameError{rule: 10, msg: err.Error()}, dataLen)
	case errors.Is(err, ErrNotDurable):
		c.releaseToken()
		c.log.Error("commit applied but not made durable; closing connection", "err", err)
		c.observeError(ErrDurability)
		return &protoEnd{"durability failure"}
	case errors.Is(err, ErrNotAcked):
		// Applied here, perhaps rolled back by the next election: neither
		// O nor E would be true.
		c.releaseToken()
		c.log.Error("commit not acknowledged by a quorum of replicas: outcome unknown; closing connection without a reply", "err", err)
		c.observeError(ErrPermFailed)
		return &protoEnd{"replication quorum failure (commit outcome unknown)"}
	}
	if errors.Is(err, ErrTooLarge) {
		// Not a storage failure: the commit is refused (refuse logs it),
		// nothing stored.
		return c.refuse(statusRefused, &frameError{rule: 11, msg: err.Error()}, dataLen)
	}
	if errors.Is(err, ErrReplica) || errors.Is(err, ErrNoQuorum) {
		// Not a storage failure: the client reached a replica, or a
		// master whose group is still forming.
		what := "this site is a replica"
		if errors.Is(err, ErrNoQuorum) {
			what = "the replication group has too few sites for a quorum yet"
		}
		c.log.Warn("commit refused: "+what, "err", err)
		return c.refuse(statusRefused, &frameError{rule: 11, msg: err.Error()}, dataLen)
	}
	c.log.Error("commit failed in the storage", "err", err)
	c.observeError(ErrStorageCommit)
	return c.refuse(statusRefused, &frameError{rule: 11, msg: "storage failure: " + err.Error()}, dataLen)
}
