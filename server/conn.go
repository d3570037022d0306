package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/commit"
	"github.com/durusbdb/durusbdb/engine"
)

// Buffer sizes of a connection: small enough that 4096 idle connections
// cost little (48 KiB each), large enough to batch pipelined requests.
// Large reads (commit data) bypass the read buffer; replies larger than the
// write buffer go to the socket directly, in writeChunk pieces each bounded
// by the write timeout.
const (
	readBufSize  = 16 << 10
	writeBufSize = 32 << 10
	writeChunk   = 64 << 10
)

// Status bytes (§4.1).
const (
	statusOK      = 'O'
	statusKey     = 'K'
	statusInvalid = 'I'
	statusRefused = 'E'
)

// errStopping ends a connection because the server shuts down.
var errStopping = errors.New("server shutting down")

// conn is one accepted connection. Its goroutine owns the reader, writer and
// request state; other goroutines touch only invalid (under mu), stopping,
// and unusedN (under commitPath.allocMu).
type conn struct {
	s      *Server
	nc     net.Conn
	id     uint64
	remote string
	log    *slog.Logger
	obs    Observer // s.cfg.Observer; nil: none

	r *bufio.Reader
	w *bufio.Writer

	busy    bool      // inside a request: reads get the request timeout
	readDL  time.Time // read deadline last set (zero: none)
	writeDL time.Time // write deadline last set
	replyDL time.Time // end of the large reply being written (zero: none)
	dataDL  time.Time // end of the commit data being read (zero: none)
	scratch [16]byte  // request fields
	out     []byte    // reply assembly for N, M, S and phase 1

	commitMem commitScratch // a commit's oids, offsets and runs, reused (pipeline.go)

	hold   *commit.Hold // commit token while held
	fwd    bool         // the commit in progress is a replica's (F)
	fwdTok engine.Token // the token of the run that applied it
	fwdPos uint64       // replica's change position at phase 1 (F; see checkForwarded)
	ctimes commitTimes  // commit in progress, for the observer

	stopping atomic.Bool  // graceful shutdown: the next read fails
	killed   atomic.Value // string: why another goroutine closed nc

	mu      sync.Mutex // guards invalid and removed
	invalid runSet     // oids changed by commits since the last sync (I1)
	// removed holds oids removed by collections since the last sync (I2):
	// told at the next sync with invalid, but forgotten when a commit's
	// changes need their room (addInvalid).
	removed  runSet
	invalidN atomic.Uint64 // invalid.len() + removed.len(), readable without mu
	// runsCounted is the runs of invalid counted in the server's
	// invalidRuns; gone is set once the connection is dropped, after
	// which its set is kept no more (an invalidation that took it in a
	// snapshot before adds nothing). Both under mu.
	runsCounted int
	gone        bool
	// untold counts the removed oids left out of invalid since the last
	// sync, its set being too full for them (addInvalid).
	untold atomic.Uint64

	// endAfter, when set (by this connection's own goroutine), ends the
	// connection after the reply to the current request, with this reason.
	endAfter string

	unusedN    uint64 // oids in commitPath.owners owned by this conn; under allocMu
	waitedRoot bool   // waited once for ROOT_OID (rootWait); under allocMu

	requests uint64
}

func newConn(s *Server, nc net.Conn, id uint64, remote string) *conn {
	c := &conn{s: s, nc: nc, id: id, remote: remote, obs: s.cfg.Observer}
	c.log = s.connLog.With("conn", id, "remote", remote)
	c.r = bufio.NewReaderSize(connReader{c}, readBufSize)
	c.w = bufio.NewWriterSize(connWriter{c}, writeBufSize)
	return c
}

// connReader feeds the bufio.Reader. Before blocking on the socket it
// flushes pending replies (so pipelined requests are answered in one write,
// and nothing is held back while the client waits), and it sets the read
// deadline: the request timeout inside a request, the idle timeout (normally
// none) between requests.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.w.Buffered() > 0 {
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
	}
	var timeout time.Duration
	if c.busy {
		timeout = c.s.cfg.RequestTimeout
	} else {
		timeout = c.s.cfg.IdleTimeout // normally 0: no deadline
	}
	if err := c.setReadDeadline(timeout); err != nil {
		return 0, err
	}
	// Checked after setting the deadline: stop() sets the flag, then a past
	// deadline, so either this check or the read sees it.
	if c.stopping.Load() {
		return 0, errStopping
	}
	n, err := c.nc.Read(p)
	if c.obs != nil && n > 0 {
		c.obs.BytesRead(n)
	}
	return n, err
}

// connWriter writes replies in chunks, each of which must make progress
// within the write timeout.
type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	c := w.c
	n := 0
	for len(p) > 0 {
		k := min(len(p), writeChunk)
		if err := c.setWriteDeadline(); err != nil {
			return n, err
		}
		m, err := c.nc.Write(p[:k])
		n += m
		if c.obs != nil && m > 0 {
			c.obs.BytesWritten(m)
		}
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

// setDeadline makes *cur (the deadline last set through set) allow about
// timeout from now; timeout 0 means no deadline. To keep the per-request
// cost low a deadline is reused while it still leaves at least 90% of
// timeout, so each read or write gets between 0.9 and 1.0 times timeout.
func (c *conn) setDeadline(cur *time.Time, timeout time.Duration, set func(time.Time) error) error {
	if timeout <= 0 {
		if cur.IsZero() {
			return nil
		}
		*cur = time.Time{}
		return set(time.Time{})
	}
	now := time.Now()
	if !cur.IsZero() && cur.Sub(now) >= timeout-timeout/10 {
		return nil
	}
	*cur = now.Add(timeout)
	return set(*cur)
}

// setReadDeadline sets the deadline of the next read: timeout from now
// (see setDeadline), or the end of the commit data being read if that is
// earlier.
func (c *conn) setReadDeadline(timeout time.Duration) error {
	if c.dataDL.IsZero() || !c.busy {
		return c.setDeadline(&c.readDL, timeout, c.nc.SetReadDeadline)
	}
	if time.Until(c.dataDL) >= timeout {
		// Not the bound yet: any deadline setDeadline keeps or sets is
		// at most timeout from now.
		return c.setDeadline(&c.readDL, timeout, c.nc.SetReadDeadline)
	}
	if c.readDL.Equal(c.dataDL) {
		return nil
	}
	c.readDL = c.dataDL
	return c.nc.SetReadDeadline(c.dataDL)
}

// setWriteDeadline sets the deadline of the next write: the write timeout
// from now, or the end of the large reply being written if earlier.
func (c *conn) setWriteDeadline() error {
	if c.replyDL.IsZero() {
		return c.setDeadline(&c.writeDL, c.s.cfg.WriteTimeout, c.nc.SetWriteDeadline)
	}
	dl := time.Now().Add(c.s.cfg.WriteTimeout)
	if c.replyDL.Before(dl) {
		dl = c.replyDL
	}
	if dl.Equal(c.writeDL) {
		return nil
	}
	c.writeDL = dl
	return c.nc.SetWriteDeadline(dl)
}

// stop makes the connection end at its next read (graceful shutdown).
func (c *conn) stop() {
	c.stopping.Store(true)
	c.nc.SetReadDeadline(time.Unix(1, 0))
}

// kill closes the connection from another goroutine, noting why.
func (c *conn) kill(reason string) {
	if c.killed.CompareAndSwap(nil, reason) {
		c.nc.Close()
	}
}

// addInvalid merges rs, the oids of a commit (mode addChange or
// addChangeFinal), into the invalid set,
// closing the connection if the set would exceed its cap in oids or in
// runs, or take the invalid sets of all connections over MaxInvalidMemory
// (I7); removals the set holds are forgotten first to make room. Called by
// other connections' goroutines. A commit's rs alone never exceeds the
// caps (it is refused first, commitPath.countRule and runsRule): they
// close only a connection that did not sync while several changes
// accumulated.
//
// removed marks oids removed by a collection (I2), kept apart: those the
// set cannot take within its caps are not told, and the connection stays
// open. They name unreachable objects whose oids are never handed out
// again (A1), so the client misses no change to an object it can reach; a
// commit that still refers to one is answered I (rule 10), a load of one
// K.
func (c *conn) addInvalid(rs []run, mode addMode) (needRoom bool) {
	removed := mode == addRemoved
	var n uint64
	var runs int
	var over, overAll, first bool
	var untold uint64
	c.mu.Lock()
	if c.killed.Load() == nil && !c.gone {
		maxTotal := c.s.cfg.MaxInvalidMemory / runBytes
		ok := false
		switch {
		case removed:
			if runs, n, overAll, ok = c.fitsLocked(&c.removed, &c.invalid, rs, maxTotal); ok {
				c.removed.addRuns(rs)
			} else {
				untold = runsLen(rs)
			}
		default:
			runs, n, overAll, ok = c.fitsLocked(&c.invalid, &c.removed, rs, maxTotal)
			if !ok && c.removed.len() > 0 {
				untold = c.dropRemovedLocked() // make room: removals can be forgotten
				runs, n, overAll, ok = c.fitsLocked(&c.invalid, &c.removed, rs, maxTotal)
			}
			ownOK := runs <= c.s.cfg.MaxInvalidRuns && n <= uint64(c.s.cfg.MaxInvalid)
			switch {
			case ok:
				c.invalid.addRuns(rs)
			case mode == addChange && ownOK:
				needRoom = true // over the total only: others' removals may give way
			default:
				over = true
				c.invalid.drop() // the connection is closed; free the memory now
				c.removed.drop()
				c.countRunsLocked()
			}
		}
		// Concurrent invalidations may have raced the estimates: a commit's
		// changes over the total close the connection (on the second try:
		// the add is kept, and adding again changes nothing), removals stay
		// (over MaxInvalidMemory by that race at most).
		if ok && c.countRunsLocked() > maxTotal && !removed {
			if mode == addChange {
				needRoom = true
			} else {
				over, overAll = true, true
				c.invalid.drop()
				c.removed.drop()
				c.countRunsLocked()
			}
		}
		if untold > 0 {
			first = c.untold.Add(untold) == untold
		}
		c.invalidN.Store(c.invalid.len() + c.removed.len())
	}
	c.mu.Unlock()
	if untold > 0 && first { // one line until the next sync, which counts them all
		c.log.Warn("removed oids not told to this connection: its invalid set would go over its limit (I2, I7); they name unreachable objects, loads of them answer K",
			"untold", untold, "would_hold", n, "max", c.s.cfg.MaxInvalid,
			"would_hold_runs", runs, "max_runs", c.s.cfg.MaxInvalidRuns, "max_invalid_memory", c.s.cfg.MaxInvalidMemory)
	}
	switch {
	case !over:
		return needRoom
	case overAll:
		c.log.Warn("closing connection: the invalid sets of all connections would be over --max-invalid-memory (I7)",
			"oids", n, "runs", runs, "max_invalid_memory", c.s.cfg.MaxInvalidMemory)
	default:
		c.log.Warn("closing connection: invalid set over its limit (I7): changes since its last sync (S or commit) over --max-invalid oids or --max-invalid-runs runs",
			"oids", n, "max", c.s.cfg.MaxInvalid,
			"runs", runs, "max_runs", c.s.cfg.MaxInvalidRuns)
	}
	if c.obs != nil {
		c.obs.Error(ErrLimit)
	}
	c.kill("invalid set over its limit")
	return false
}

// addMode says what addInvalid adds.
type addMode int

const (
	// addChange: a commit's oids, first try. A set that would take the
	// sets of all connections over MaxInvalidMemory, within its own caps,
	// is left for the caller to retry once every set's removals are gone
	// (needRoom), not closed.
	addChange addMode = iota
	// addChangeFinal: a commit's oids, retried: over a cap, the
	// connection is closed (I7).
	addChangeFinal
	// addRemoved: oids removed by a collection (I2): what does not fit is
	// left untold.
	addRemoved
)

// fitsLocked reports whether the sets would hold at most their caps with
// rs merged into into (the other part counted as it is, overlaps twice),
// with the runs and oids they would hold and whether the sets of all
// connections would go over MaxInvalidMemory (maxTotal runs). Near a cap
// it decides before growing the set, so a flood of closings does not
// first allocate every set it closes. c.mu is held.
func (c *conn) fitsLocked(into, other *runSet, rs []run, maxTotal int64) (runs int, n uint64, overAll, ok bool) {
	cfg := &c.s.cfg
	base := c.s.invalidRuns.Load() - int64(c.runsCounted)
	runs = len(into.runs) + len(rs) + len(other.runs)
	if runs <= cfg.MaxInvalidRuns && base+int64(runs) <= maxTotal {
		if n = into.len() + runsLen(rs) + other.len(); n <= uint64(cfg.MaxInvalid) {
			return runs, n, false, true
		}
	}
	r, o := into.mergedSize(rs)
	runs, n = r+len(other.runs), o+other.len()
	overAll = base+int64(runs) > maxTotal
	return runs, n, overAll, runs <= cfg.MaxInvalidRuns && n <= uint64(cfg.MaxInvalid) && !overAll
}

// forgetRemoved lets go of the removals the invalid set holds (they are
// not told: see addInvalid), to make room for a commit's changes.
func (c *conn) forgetRemoved() {
	c.mu.Lock()
	k := c.dropRemovedLocked()
	c.invalidN.Store(c.invalid.len())
	c.mu.Unlock()
	if k > 0 && c.untold.Add(k) == k {
		c.log.Warn("removed oids not told to this connection: forgotten to make room for commits' changes within --max-invalid-memory (I2, I7); they name unreachable objects, loads of them answer K",
			"untold", k, "max_invalid_memory", c.s.cfg.MaxInvalidMemory)
	}
}

// dropRemovedLocked lets go of the removals the set holds and returns how
// many oids they were (c.mu held).
func (c *conn) dropRemovedLocked() uint64 {
	k := c.removed.len()
	if k > 0 {
		c.removed.drop()
		c.countRunsLocked()
	}
	return k
}

// isInvalid reports whether oid is in the invalid set (I4).
func (c *conn) isInvalid(oid uint64) bool {
	if c.invalidN.Load() == 0 {
		return false
	}
	c.mu.Lock()
	in := c.invalid.contains(oid) || c.removed.contains(oid)
	c.mu.Unlock()
	return in
}

// takeInvalid empties the invalid set and returns its runs (I3).
func (c *conn) takeInvalid() ([]run, uint64) {
	if c.invalidN.Load() == 0 {
		c.noteUntold(0)
		return nil, 0
	}
	c.mu.Lock()
	if c.removed.len() > 0 { // told with the changes, in one list (I5)
		c.invalid.addRuns(c.removed.runs)
		c.removed.drop()
	}
	rs, n := c.invalid.take()
	c.countRunsLocked()
	c.invalidN.Store(0)
	c.mu.Unlock()
	c.noteUntold(n)
	return rs, n
}

// noteUntold logs, at a sync that tells the client of told oids, how many
// removed oids were left untold since the last one (addInvalid), if any.
func (c *conn) noteUntold(told uint64) {
	if c.untold.Load() == 0 {
		return
	}
	if u := c.untold.Swap(0); u > 0 {
		c.log.Info("sync: removed oids left untold since the last one (the invalid set was full)", "untold", u, "told", told)
	}
}

// runBytes is what one run of an invalid set is counted as against
// MaxInvalidMemory (two oids).
const runBytes = 16

// countRunsLocked brings the server's count of invalid runs up to date
// with this connection's set and returns the total (c.mu held).
func (c *conn) countRunsLocked() int64 {
	n := len(c.invalid.runs) + len(c.removed.runs)
	d := n - c.runsCounted
	c.runsCounted = n
	return c.s.invalidRuns.Add(int64(d))
}

// dropInvalid lets the invalid set go for good (the connection is
// dropped) and gives its runs back to the server's count.
func (c *conn) dropInvalid() {
	c.mu.Lock()
	c.gone = true
	c.invalid.drop()
	c.removed.drop()
	c.countRunsLocked()
	c.invalidN.Store(0)
	c.mu.Unlock()
}

// releaseToken gives back the commit token if this connection holds it.
func (c *conn) releaseToken() {
	if c.hold != nil {
		c.hold.Release()
		c.hold = nil
	}
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	c.log.Info("connection opened")
	if c.obs != nil {
		c.obs.ConnOpened(c.remote)
	}
	why := "disconnected"
	var err error
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("panic while serving connection", "panic", p, "stack", string(debug.Stack()))
			why = "panic"
			err = fmt.Errorf("panic: %v", p)
			if c.obs != nil {
				c.obs.Error(ErrPanic)
			}
		}
		if why != "panic" && c.killed.Load() == nil {
			c.w.Flush()
		}
		c.nc.Close()
		// Unregister (and release the unused oids) before the token, so the
		// next holder never sees this connection's unused set (rule 7).
		c.s.dropConn(c)
		c.releaseToken()
		if k, ok := c.killed.Load().(string); ok {
			why = k
		}
		attrs := []any{"reason", why, "requests", c.requests}
		if err != nil && why != "panic" {
			attrs = append(attrs, "err", err)
		}
		c.log.Info("connection closed", attrs...)
		if c.obs != nil {
			c.obs.ConnClosed(c.remote, why)
		}
		// Last: Serve returns only after every close is logged and observed.
		c.s.wg.Done()
	}()
	if why, err = c.handshake(); why == "" {
		why, err = c.loop()
	}
}

// loop handles requests in order until the connection ends; it returns the
// reason and, for abnormal ends, the error.
func (c *conn) loop() (string, error) {
	for {
		c.busy = false
		cmd, err := c.r.ReadByte()
		if err != nil {
			return c.endReason(err, false)
		}
		c.busy = true
		c.requests++
		if c.obs != nil {
			c.obs.Request(cmd)
		}
		switch cmd {
		case 'V':
			err = c.doVersion()
		case 'N':
			err = c.doNew(1)
		case 'M':
			var k byte
			if k, err = c.r.ReadByte(); err == nil {
				err = c.doNew(int(k))
			}
		case 'L':
			err = c.doLoad()
		case 'B':
			err = c.doBulk()
		case 'S':
			err = c.doSync()
		case 'C':
			err = c.doCommit()
		case 'P':
			err = c.doPack()
		case cmdForward:
			err = c.doForward()
		case cmdAllocate:
			err = c.doAllocate()
		case 'Q':
			if !c.quitAllowed() {
				return "quit refused", nil
			}
			c.log.Warn("Q received: shutting down")
			c.s.Close()
			return "quit", nil
		case '.':
			// The stock client's close() sends "." on purpose.
			return "client closed", nil
		default:
			c.log.Warn("unknown command byte; closing connection", "byte", fmt.Sprintf("%02X", cmd))
			c.observeError(ErrProtocol)
			return "unknown command", nil
		}
		if err != nil {
			var pe *protoEnd
			if errors.As(err, &pe) {
				return pe.reason, nil
			}
			return c.endReason(err, true)
		}
		if c.endAfter != "" {
			c.log.Warn("closing connection after its reply: "+c.endAfter, "max_unused_memory", c.s.cfg.MaxUnusedMemory)
			c.observeError(ErrLimit)
			return c.endAfter, nil
		}
	}
}

// protoEnd ends a connection on purpose (V mismatch, limits).
type protoEnd struct{ reason string }

func (e *protoEnd) Error() string { return e.reason }

// endReason classifies the error that ended the connection.
func (c *conn) endReason(err error, inRequest bool) (string, error) {
	if k, ok := c.killed.Load().(string); ok {
		return k, nil
	}
	if c.stopping.Load() || errors.Is(err, errStopping) {
		if inRequest {
			return "server shutdown (request abandoned)", nil
		}
		return "server shutdown", nil
	}
	if errors.Is(err, io.EOF) && !inRequest {
		return "disconnected", nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if inRequest {
			c.log.Warn("closing connection: request timed out", "err", err)
			c.observeError(ErrTimeout)
			return "timeout", err
		}
		return "idle timeout", nil
	}
	if inRequest {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			c.log.Warn("client disconnected inside a request")
			c.observeError(ErrDisconnect)
			return "disconnected mid-request", err
		}
		c.log.Warn("connection failed inside a request", "err", err)
		c.observeError(ErrIO)
		return "error", err
	}
	c.log.Warn("connection failed between requests", "err", err)
	c.observeError(ErrIO)
	return "error", err
}

// observeError reports an error to the observer, if any.
func (c *conn) observeError(kind ErrorKind) {
	if c.obs != nil {
		c.obs.Error(kind)
	}
}

// readFull reads exactly len(b) bytes of the current request.
func (c *conn) readFull(b []byte) error {
	_, err := io.ReadFull(c.r, b)
	return err
}

// readUint32 reads an int4.
func (c *conn) readUint32() (uint32, error) {
	b := c.scratch[:4]
	if err := c.readFull(b); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// readOID reads an oid.
func (c *conn) readOID() (uint64, error) {
	b := c.scratch[:8]
	if err := c.readFull(b); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func (c *conn) writeUint32(v uint32) error {
	b := binary.BigEndian.AppendUint32(c.scratch[8:8], v)
	_, err := c.w.Write(b)
	return err
}

// doVersion: V int4 → int4 1; a client protocol other than 1 closes the
// connection after the reply.
func (c *conn) doVersion() error {
	v, err := c.readUint32()
	if err != nil {
		return err
	}
	if err := c.writeUint32(1); err != nil {
		return err
	}
	if v != 1 {
		if err := c.w.Flush(); err != nil {
			return err
		}
		c.log.Warn("client protocol not supported; closing", "protocol", v)
		c.observeError(ErrProtocol)
		return &protoEnd{"protocol mismatch"}
	}
	return nil
}

// doNew answers N (k = 1) and M k with k new oids.
func (c *conn) doNew(k int) error {
	out, err := c.s.alloc(c.s.soft, c, k, c.out[:0])
	c.out = out[:0]
	if errors.Is(err, errUnusedLimit) {
		c.log.Warn("closing connection: oid allocation refused", "count", k, "err", err)
		c.observeError(ErrLimit)
		return &protoEnd{"unused oids over the limit"}
	}
	if err != nil {
		c.log.Error("closing connection: oid allocation failed", "count", k, "err", err)
		c.observeError(ErrAlloc)
		return &protoEnd{"allocation failed"}
	}
	_, err = c.w.Write(out)
	return err
}

// doLoad answers L.
func (c *conn) doLoad() error {
	oid, err := c.readOID()
	if err != nil {
		return err
	}
	return c.writeLoad(oid)
}

// doBulk answers B, streaming: each oid is answered as it is read, so no
// memory depends on the count.
func (c *conn) doBulk() error {
	n, err := c.readUint32()
	if err != nil {
		return err
	}
	if uint64(n) > uint64(c.s.cfg.MaxBulk) {
		c.log.Warn("closing connection: bulk load count over the limit", "count", n, "max", c.s.cfg.MaxBulk)
		c.observeError(ErrLimit)
		return &protoEnd{"bulk count over the limit"}
	}
	for range n {
		oid, err := c.readOID()
		if err != nil {
			return err
		}
		if err := c.writeLoad(oid); err != nil {
			return err
		}
	}
	return nil
}

// writeLoad writes the load-response for oid (§4.3 L). A record larger
// than the write buffer is charged to the budget of bytes in flight while
// it is written (once however many replies share it) and must be written
// within WriteTimeout plus its size at MinWriteRate; one that finds no room
// in the budget within InflightWait is answered E. Where the storage can
// tell a record's size before reading it (boundedLoader), the charge is
// taken before the record is read, so that loads waiting for room hold
// none of its memory (see loadCharged).
func (c *conn) writeLoad(oid uint64) error {
	if c.isInvalid(oid) {
		return c.loadStatus(statusInvalid)
	}
	rec, release, err := c.loadCharged(oid)
	if errors.Is(err, ErrInflight) {
		c.log.Warn("load refused: bytes in flight over the budget (--max-inflight)", "oid", oid, "err", err)
		c.observeError(ErrLimit)
		return c.loadStatus(statusRefused)
	}
	if release != nil {
		defer release()
	}
	if err != nil {
		if errors.Is(err, ErrNoRecord) {
			return c.loadStatus(statusKey)
		}
		c.log.Error("load failed", "oid", oid, "err", err)
		c.observeError(ErrLoad)
		return c.loadStatus(statusRefused)
	}
	if uint64(len(rec)) > MaxCommitLimit {
		c.log.Error("load failed: record too large for the protocol", "oid", oid, "bytes", len(rec))
		c.observeError(ErrLoad)
		return c.loadStatus(statusRefused)
	}
	if c.obs != nil {
		c.obs.Load(statusOK)
	}
	if rate := c.s.cfg.MinWriteRate; rate > 0 && len(rec) > chargeMin {
		c.replyDL = time.Now().Add(c.s.cfg.WriteTimeout + time.Duration(float64(len(rec))/float64(rate)*float64(time.Second)))
		defer func() { c.replyDL = time.Time{} }()
	}
	b := c.scratch[8:8]
	b = append(b, statusOK)
	b = binary.BigEndian.AppendUint32(b, uint32(len(rec)))
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	// A record larger than the buffer's free space goes to the socket
	// without a copy (bufio writes it through).
	_, err = c.w.Write(rec)
	return err
}

// chargeLoad charges rec, the record of oid already in memory (cached,
// shared with another reply, or read before its size could be known), to
// the budget of bytes in flight. If it does not fit now, rec is let go
// while waiting (so waiting replies hold no memory), then the record is
// loaded again into the room reserved. It returns the release of the
// charge and the record to write; an error wraps ErrInflight or is the
// reload's.
func (c *conn) chargeLoad(oid uint64, rec []byte) (func(), []byte, error) {
	if release, ok := c.s.inflight.tryShared(oid, rec); ok {
		return release, rec, nil
	}
	n := int64(len(rec))
	rec = nil // let it go while waiting
	rec, release, err := c.loadReserved(oid, n, n)
	return release, rec, err
}

// loadCharged loads oid for a reply and charges a record larger than
// chargeMin to the budget of bytes in flight, returning the record and the
// release of its charge (nil if none). A storage that can bound its reads
// (boundedLoader) is asked first for a record whose read holds at most
// chargeMin bytes: a larger one is refused unread with its size, charged,
// waiting for room (loadReserved), and only then read. So the memory of
// concurrent loads of large records stays within the budget, plus about
// chargeMin per connection, instead of reaching connections × record
// size before any of them waits. A small record costs nothing more than
// Load. An error wraps ErrInflight or is the storage's.
func (c *conn) loadCharged(oid uint64) ([]byte, func(), error) {
	rec, err := c.loadWithin(oid, chargeMin)
	if le := loadSize(err); le != nil {
		return c.loadReserved(oid, le.size, le.need)
	}
	if err != nil || len(rec) <= chargeMin {
		return rec, nil, err
	}
	release, rec, err := c.chargeLoad(oid, rec)
	return rec, release, err
}

// loadReserveTries bounds how often loadReserved charges again for a
// record that grew between its measure and its read.
const loadReserveTries = 4

// loadReserved charges need bytes for oid, a record of about size bytes
// whose read holds need, waiting up to InflightWait for room, and then
// loads it with need as the read's bound (boundedLoader): a record that
// grew meanwhile is refused again, unread, and charged anew. A read
// costing more than the whole budget of a record that fits it (LevelDB's
// copies) is charged the whole budget, so that it runs alone. The charge
// is then fitted to the record, or given back if the record is no longer
// larger than chargeMin. Its waits for room take InflightWait in all,
// however often the record grows. It returns the record and the release of
// its charge; an error wraps ErrInflight or is the load's.
func (c *conn) loadReserved(oid uint64, size, need int64) ([]byte, func(), error) {
	b := c.s.inflight
	deadline := time.Now().Add(c.s.cfg.InflightWait)
	for try := 1; ; try++ {
		n := need
		if need > b.limit && size <= b.limit {
			n = b.limit
		}
		if err := b.acquire(c.s.soft, n, max(time.Until(deadline), 0)); err != nil {
			return nil, nil, err
		}
		rec, err := c.loadWithin(oid, need)
		if le := loadSize(err); le != nil {
			b.cancel(n) // refused unread: nothing was allocated
			if try == loadReserveTries {
				return nil, nil, fmt.Errorf("server: load oid %d: the record grew at each of %d reads: %w", oid, try, err)
			}
			size, need = le.size, max(le.need, need+1)
			continue
		}
		if err != nil {
			b.release(n)
			return nil, nil, err
		}
		if len(rec) <= chargeMin {
			b.cancel(n)
			return rec, nil, nil
		}
		return rec, b.adoptShared(oid, rec, n), nil
	}
}

// loadWithin loads oid with a read bounded by limit bytes where the
// storage supports it (boundedLoader), else with Load.
func (c *conn) loadWithin(oid uint64, limit int64) ([]byte, error) {
	if bl, ok := c.s.st.(boundedLoader); ok {
		return bl.LoadBounded(oid, int(limit))
	}
	return c.s.st.Load(oid)
}

// loadStatus answers a load with a bare status byte (K, I or E).
func (c *conn) loadStatus(status byte) error {
	if c.obs != nil {
		c.obs.Load(status)
	}
	return c.w.WriteByte(status)
}

// doSync answers S with the invalid set and empties it.
func (c *conn) doSync() error {
	return c.writeInvalid()
}

// writeInvalid writes int4 k and the k invalid oids, emptying the set.
func (c *conn) writeInvalid() error {
	rs, n := c.takeInvalid()
	if c.obs != nil && n > 0 {
		c.obs.InvalidSent(n)
	}
	if err := c.writeUint32(uint32(n)); err != nil {
		return err
	}
	// Write in slices so a large set does not need 8·k bytes at once.
	for _, r := range rs {
		for lo := r.lo; lo < r.hi; {
			hi := min(r.hi, lo+4096)
			c.out = appendRunOIDs(c.out[:0], []run{{lo, hi}})
			if _, err := c.w.Write(c.out); err != nil {
				return err
			}
			lo = hi
		}
	}
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	return nil
}

// doPack answers P with O at once, then starts a collection (G1).
func (c *conn) doPack() error {
	if err := c.w.WriteByte(statusOK); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	if c.s.st.ReadOnly() {
		c.log.Info("pack ignored: read-only server")
		return nil
	}
	if c.s.st.Pack() {
		c.log.Info("pack: full collection started")
	} else {
		c.log.Info("pack: a full collection is already running")
	}
	return nil
}
