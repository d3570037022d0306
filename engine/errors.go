package engine

import (
	"errors"
	"fmt"

	"github.com/durusbdb/durusbdb/durus/record"
)

// Errors returned by the engine; test with errors.Is. They are wrapped with
// the oid or directory concerned.
var (
	// ErrNotFound: no record is stored under the oid.
	ErrNotFound = errors.New("engine: no such object")
	// ErrMalformed: a record fails R1–R3 (it is record.ErrMalformed, so
	// errors.Is works with either name).
	ErrMalformed = record.ErrMalformed
	// ErrDuplicateOID: one commit names the same oid twice.
	ErrDuplicateOID = errors.New("engine: oid stored twice in one commit")
	// ErrUnallocated: a commit stores an oid that was never handed out.
	ErrUnallocated = errors.New("engine: oid was never handed out")
	// ErrReadOnly: the database was opened read-only.
	ErrReadOnly = errors.New("engine: database is read-only")
	// ErrDangling: a commit references an oid that has no record and is not
	// stored by the same commit.
	ErrDangling = errors.New("engine: reference to an oid without a record")
	// ErrLayout: the directory holds a layout this engine does not know.
	ErrLayout = errors.New("engine: unknown database layout")
	// ErrImportIncomplete: an Import did not finish; the directory holds
	// partial data and must be imported again (Options.ForImport) or
	// restored.
	ErrImportIncomplete = errors.New("engine: import incomplete")
	// ErrNotEmpty: Import into a database holding records without Force.
	ErrNotEmpty = errors.New("engine: database is not empty")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("engine: database closed")
	// ErrGarbageInvalid: validate_garbage found a candidate that must not
	// be deleted; the collector stopped.
	ErrGarbageInvalid = errors.New("engine: garbage validation failed")
	// ErrCollecting: a full collection is already running.
	ErrCollecting = errors.New("engine: full collection already running")
	// ErrPermFailed: a replicated commit that a quorum of sites did not
	// acknowledge; its outcome is unknown and it must never be answered
	// as committed.
	ErrPermFailed = errors.New("engine: commit not acknowledged by a quorum of replicas")
	// ErrNotMaster: a write on a replica of a replication group, where
	// only the master writes.
	ErrNotMaster = errors.New("engine: not the replication master")
	// ErrNoQuorum: a commit on the master of a replication group that has
	// fewer sites than a quorum of its configured size (its very first
	// start, before the replicas joined): refused, nothing stored.
	ErrNoQuorum = errors.New("engine: too few sites in the replication group for a quorum")
	// ErrTooLarge: a commit changes more reference counts than one
	// transaction of the storage's cache can hold (kv.TxnBounded); it is
	// refused, nothing stored, and the error says which --cache-size
	// would take it.
	ErrTooLarge = errors.New("engine: commit too large for one transaction of the storage's cache")
)

// ErrRecordLarge is wrapped by the error of DB.LoadBounded for a record
// whose read would hold more memory than the caller allowed; the error is
// a *RecordSizeError.
var ErrRecordLarge = errors.New("engine: record larger than the load allowed")

// RecordSizeError is DB.LoadBounded's refusal of a record it did not read:
// Size is the record's length when it was measured (a later load may find
// another), Need the bytes its read holds at its peak (Size, or more where
// the store copies it several times: kv.ReadCoster), Max the bound given.
type RecordSizeError struct {
	OID  uint64
	Size int
	Need int
	Max  int
}

// Error describes the refused load.
func (e *RecordSizeError) Error() string {
	return fmt.Sprintf("engine: load oid %d: record of %d bytes needs %d bytes to read, over the %d allowed", e.OID, e.Size, e.Need, e.Max)
}

// Unwrap returns ErrRecordLarge.
func (e *RecordSizeError) Unwrap() error { return ErrRecordLarge }

// ImportError is Import's error once the import has begun writing: the
// cause, and what became of the records written so far (Aftermath: "nothing
// imported", or why the directory stays marked incomplete). A caller that
// discards the directory anyway (an import into a staging directory)
// reports Cause alone.
type ImportError struct {
	Dir       string
	Cause     error
	Aftermath string
}

func (e *ImportError) Error() string {
	return fmt.Sprintf("engine: import into %s: %v (%s)", e.Dir, e.Cause, e.Aftermath)
}

// Unwrap returns the cause.
func (e *ImportError) Unwrap() error { return e.Cause }
