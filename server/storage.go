package server

import (
	"context"
	"errors"
)

// Storage is what the server needs from the database. The engine satisfies it
// through Engine; tests may use a fake.
//
// Load, AllocOIDs, AllocCursor, Pack and ReadOnly are called concurrently
// from many connections. Stage is called by one connection at a time (the
// holder of the commit token), after the server has checked rules 1–9 of
// PROTOCOL.md §5.5.
type Storage interface {
	// Load returns the record stored under oid, or an error wrapping
	// ErrNoRecord. The server does not keep or modify the slice.
	Load(oid uint64) ([]byte, error)
	// AllocOIDs hands out the contiguous run [first, first+n), durably
	// reserved (A4). Not called on read-only storage.
	AllocOIDs(n int) (first uint64, err error)
	// AllocCursor returns h: every oid below h has been handed out or reserved.
	AllocCursor() uint64
	// Stage takes recs (full records, oid first) to be applied atomically,
	// after every commit staged before: it may return before they are
	// applied (the engine queues them, so the token passes on before the
	// writes), but from its return a Load of one of their oids returns them
	// or, if the commit is refused, the record stored before. Pending.Wait
	// returns once they are applied and durable. A reference to an oid
	// neither stored nor in recs fails, from Stage or from Wait, with an
	// error wrapping ErrDangling; a flush failure after the apply, from
	// Wait, wraps ErrNotDurable; any other error means the storage failed
	// and nothing was applied.
	Stage(ctx context.Context, recs [][]byte) (Pending, error)
	// Pack starts a full collection in the background; false if one is
	// running or the storage is read-only.
	Pack() bool
	// ReadOnly reports whether commits are refused.
	ReadOnly() bool
}

// Pending is a commit staged by Storage.Stage, perhaps not yet applied or
// durable.
type Pending interface {
	// Wait returns once the commit is applied and durable (group commit),
	// with its outcome (see Storage.Stage).
	Wait(ctx context.Context) error
}

// Errors a Storage wraps so the server can choose the reply byte.
var (
	// ErrNoRecord: Load found no record for the oid (reply K).
	ErrNoRecord = errors.New("server: no record")
	// ErrDangling: a committed record refers to an oid without a record
	// (rule 10 of §5.5, reply I).
	ErrDangling = errors.New("server: dangling reference")
	// ErrTooLarge: the storage refused a commit too large for one of its
	// transactions, storing nothing (reply E, naming what would take it).
	ErrTooLarge = errors.New("server: commit too large for the storage")
	// ErrNotDurable: a commit was applied but could not be made durable
	// (the connection is closed without a reply).
	ErrNotDurable = errors.New("server: commit not made durable")
	// ErrNotAcked: a replicated commit was applied on the master but a
	// quorum of sites did not acknowledge it; its outcome is unknown (the
	// connection is closed without a reply).
	ErrNotAcked = errors.New("server: commit not acknowledged by a quorum")
	// ErrReplica: a commit reached a site that is not the master (a
	// replica without a Forwarder storage, or one demoted meanwhile; reply
	// E naming the situation).
	ErrReplica = errors.New("server: this site is a replica; commit on the master")
	// ErrNoQuorum: a commit on the master of a replication group that does
	// not have the sites a quorum needs yet (reply E: nothing stored).
	ErrNoQuorum = errors.New("server: too few sites in the replication group for a quorum")
)
