package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
)

// rootState holds what the server knows about ROOT_OID (oid 0), the one
// oid with rules of its own, and those rules are the methods of this file
// (on rootState, and on commitPath, which holds it, where they need the
// unused sets or the storage).
// ROOT_OID is the first oid handed out, but a stock client commits it only
// when it first stores something, and may disconnect before; so:
//
//   - Root release (A5): ROOT_OID without a record and in nobody's unused
//     set is handed out again, first, by the next allocation (takeRootLocked).
//   - Root stored early (C31): a ROOT_OID committed before anybody asked
//     for oids is never handed out; the run that would start at it skips
//     it (skipRootLocked).
//   - Departing holder (C39): an allocation that finds ROOT_OID unstored in
//     another connection's unused set waits up to rootWait for that
//     connection to go away, once per connection (conn.waitedRoot), so a
//     client that connects while the previous one is still closing gets
//     ROOT_OID (waitRootLocked).
//   - First commit (commitPath.admit, pipeline.go): the commit that first
//     stores ROOT_OID keeps commitPath.allocMu from its owner check (rules
//     6–7) until it is applied, so root release cannot hand ROOT_OID out
//     meanwhile; then stored is set (committed) and waiting allocations
//     are woken.
//   - stored never goes back to false: ROOT_OID is never removed (G5). It is
//     learnt from a commit or from the storage (exists: only ErrNoRecord
//     means absent, so a root that may exist is never handed out as new).
//
// Every field is guarded by commitPath.allocMu.
type rootState struct {
	stored bool          // ROOT_OID has a record
	freed  chan struct{} // closed when ROOT_OID leaves an unused set; nil if nobody waits
}

// rootWait is how long an allocation waits for another connection holding
// an unstored ROOT_OID to go away. A stock client that takes oids 0…31 and
// closes sends "." and disconnects; the next client may connect and ask for
// oids before the server has read that, and should still get ROOT_OID (C39).
// A connection waits at most once.
const rootWait = 200 * time.Millisecond

// released wakes allocations waiting for ROOT_OID (it left an unused set,
// or was stored). commitPath.allocMu is held.
func (r *rootState) released() {
	if r.freed != nil {
		close(r.freed)
		r.freed = nil
	}
}

// firstCommit reports whether a commit of the oids sorted (ascending) is
// the first to store ROOT_OID. commitPath.allocMu is held.
func (r *rootState) firstCommit(sorted []uint64) bool {
	return sorted[0] == record.RootOID && !r.stored
}

// committed records that a commit of the oids sorted (ascending) was
// staged: if it stores ROOT_OID, the root is stored from now on.
// commitPath.allocMu is held.
func (r *rootState) committed(sorted []uint64) {
	if sorted[0] == record.RootOID {
		r.stored = true
		r.released()
	}
}

// waitRootLocked is the C39 wait: if another connection holds ROOT_OID
// unstored and c has not waited yet, it releases p.allocMu and waits up to
// rootWait for ROOT_OID to be released (or for ctx to end: shutdown), then
// takes p.allocMu again. p.allocMu is held.
func (p *commitPath) waitRootLocked(ctx context.Context, c *conn) {
	ow := p.owners.owner(record.RootOID)
	if ow == nil || ow == c || p.root.stored || c.waitedRoot {
		return
	}
	// Once per connection (its first allocations are the ones racing
	// with a departing root holder), so a holder that keeps ROOT_OID
	// unstored cannot slow everybody's allocations down.
	c.waitedRoot = true
	if p.root.freed == nil {
		p.root.freed = make(chan struct{})
	}
	ch := p.root.freed
	p.allocMu.Unlock()
	t := time.NewTimer(rootWait)
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	p.allocMu.Lock()
}

// takeRootLocked is root release (A5): when ROOT_OID has no record and is
// in nobody's unused set, it is handed to c and appended to b. It reports
// whether it was. p.allocMu is held.
func (p *commitPath) takeRootLocked(c *conn, b []byte) ([]byte, bool, error) {
	if p.root.stored || p.owners.owner(record.RootOID) != nil || p.allocCursorLocked() == 0 {
		return b, false, nil
	}
	exists, err := p.rootExists()
	if err != nil {
		return b, false, err
	}
	if exists {
		p.root.stored = true
		return b, false, nil
	}
	b = record.AppendOID(b, record.RootOID)
	p.owners.add(record.RootOID, record.RootOID+1, c)
	c.unusedN++
	return b, true, nil
}

// skipRootLocked is C31 for a writable storage: first is the start of a
// run just reserved; if it is ROOT_OID and the root is stored already, one
// more oid is reserved and the run starts after ROOT_OID. It returns the
// run's first oid. p.allocMu is held.
func (p *commitPath) skipRootLocked(first uint64) (uint64, error) {
	if first != record.RootOID {
		return first, nil
	}
	exists := p.root.stored
	if !exists {
		var err error
		if exists, err = p.rootExists(); err != nil {
			// The run is reserved (A4) but handed to nobody: those
			// oids are lost, never reused (A1).
			return first, err
		}
	}
	if !exists {
		return first, nil
	}
	p.root.stored = true
	if _, err := p.reserve(1); err != nil {
		return first, fmt.Errorf("allocating 1 oid: %w", err)
	}
	return first + 1, nil
}

// rootExists reports whether ROOT_OID has a record. Only ErrNoRecord
// means absent: any other Load error is returned, so that a root that may
// exist is never handed out as new (A5).
func (p *commitPath) rootExists() (bool, error) {
	_, err := p.st.Load(record.RootOID)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNoRecord):
		return false, nil
	}
	return false, fmt.Errorf("server: looking up ROOT_OID: %w", err)
}
