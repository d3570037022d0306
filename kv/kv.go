// Package kv is the small transactional key-value interface that the engine
// stores Durus objects through. Two backends implement it: bdb (Berkeley DB,
// build tag bdb) and leveldb (LevelDB over levigo). kv/kvtest is the
// conformance suite both must pass.
//
// A Store holds a fixed set of named buckets (FORMAT.md: meta, objects,
// refcounts, garbage). The Berkeley DB backend keeps each bucket in its own
// database file; the LevelDB backend keeps them in one database under a
// one-byte key prefix. Keys and values are arbitrary byte strings (empty
// allowed). Cursors iterate in bytewise key order, except over a bucket
// created with the hash access method, whose order is unspecified.
//
// Concurrency: a Store is safe for use by many goroutines. A Txn and its
// cursors belong to one goroutine at a time. Write transactions may fail with
// ErrConflict (deadlock or lock timeout); nothing of them is applied and the
// caller retries (see Update). A goroutine must never hold two write
// transactions at once (no Update inside Update): LevelDB serialises
// writers, so the second Begin would wait for the first forever.
//
// What kvtest enforces beyond the method comments: a write transaction reads
// its own writes, also through a cursor opened before the write; deleting
// the record under a cursor while iterating is allowed; a read transaction
// reads repeatably; Put/Delete in a read transaction fail with ErrReadOnly;
// Commit of a read transaction returns nil; a transaction ended by closing
// the store reports ErrTxnDone or ErrClosed. After a cursor move returns
// false the cursor's position is unspecified: re-position it with First,
// Last or Seek.
package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Durability says when Txn.Commit may return relative to stable storage.
type Durability int

const (
	// Sync: the commit is on stable storage (fsync) before Commit returns.
	Sync Durability = iota
	// WriteNoSync: the commit is written to the operating system before
	// Commit returns; it survives a process crash, not a power loss.
	WriteNoSync
	// NoSync: the commit may stay in process memory until a later Flush,
	// a Sync commit or a checkpoint; a process crash may lose it (but never
	// half of it).
	NoSync
)

// String returns the option spelling of d: "sync", "write-nosync" or "nosync".
func (d Durability) String() string {
	switch d {
	case Sync:
		return "sync"
	case WriteNoSync:
		return "write-nosync"
	case NoSync:
		return "nosync"
	}
	return "durability(?)"
}

// ParseDurability parses "sync", "write-nosync" or "nosync".
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "sync":
		return Sync, nil
	case "write-nosync":
		return WriteNoSync, nil
	case "nosync":
		return NoSync, nil
	}
	return 0, errors.New("kv: durability must be sync, write-nosync or nosync, not " + s)
}

// BucketSpec describes one bucket. File, Hash and PageSize matter to the
// Berkeley DB backend only, Prefix to the LevelDB backend only.
type BucketSpec struct {
	Name     string // bucket name used in Txn calls, e.g. "objects"
	File     string // Berkeley DB database file, e.g. "objects.db"
	Prefix   byte   // LevelDB key prefix, e.g. 'o'
	Hash     bool   // Berkeley DB: hash access method instead of btree (at creation only)
	PageSize int    // Berkeley DB: page size at creation; 0 = backend default
	// NoChecksum: Berkeley DB creates the file without page checksums
	// (at creation only; by default every file has them).
	NoChecksum bool
}

// Options are common to every backend. Zero values are the documented defaults.
type Options struct {
	// Dir is the directory holding the database. It must exist.
	Dir string
	// Create allows creating a new database in an empty directory.
	Create bool
	// ReadOnly refuses writes (ErrReadOnly). Berkeley DB then writes no
	// database file; LevelDB, which has no read-only mode, still writes its
	// own LOG, log and MANIFEST files.
	ReadOnly bool
	// Buckets is the fixed set of buckets; it must be the same on every open.
	Buckets []BucketSpec
	// CacheSize in bytes; 0 means 64 MiB.
	CacheSize int64
	// Logger receives backend messages; nil means slog.Default().
	Logger *slog.Logger
	// Replication, if set, opens the directory as a site of a replication
	// group (Berkeley DB only; other backends refuse it).
	Replication *Replication
}

// DefaultCacheSize is the cache used when Options.CacheSize is 0.
const DefaultCacheSize = 64 << 20

// Store is an open database. Close it exactly once (later calls return nil).
type Store interface {
	// Begin starts a transaction. A read-only transaction sees committed
	// data and never blocks writers for long; writable ones may conflict.
	Begin(ctx context.Context, writable bool) (Txn, error)
	// Flush makes every transaction committed before the call durable
	// (Berkeley DB: one log flush; LevelDB: one write and fdatasync of its
	// redo log). Group commit is NoSync commits followed by one Flush.
	Flush() error
	// Checkpoint writes dirty pages and, when removeLogs is set, removes log
	// files no longer needed for normal recovery (a no-op where the backend
	// has no such notion).
	Checkpoint(ctx context.Context, removeLogs bool) error
	// Backend names the implementation: "bdb" or "leveldb".
	Backend() string
	// Close releases everything. Transactions still open are aborted.
	Close() error
}

// Getter is implemented by stores that can read one key outside any
// transaction more cheaply than Begin+Get+Abort (Berkeley DB: one DB->get
// without a transaction; LevelDB: one Get). The read sees committed data
// only. The engine's single-object loads use it when present.
type Getter interface {
	Get(bucket string, key []byte) ([]byte, error)
}

// BoundedGetter is implemented by stores that can tell a value's size
// before they allocate it (Berkeley DB: DB->get into a bounded user buffer
// answers DB_BUFFER_SMALL with the size, reading no overflow page), so
// that a caller can account for the memory of a large value, and wait for
// room, before it is read. GetBounded reads like Getter.Get, but a value
// longer than max bytes is not read: the error is a *ValueSizeError
// (wrapping ErrValueTooLarge) giving its size, and the caller may call
// again with a larger max. A value longer than max may still be returned
// when reading it cost no allocation beyond the backend's own bounded read
// buffer (at most 64 KiB). LevelDB cannot learn a size without reading the
// value (its Get copies it, and an iterator reads the whole block holding
// it), so it does not implement this interface.
type BoundedGetter interface {
	GetBounded(bucket string, key []byte, max int) ([]byte, error)
}

// ErrValueTooLarge is wrapped by the error of BoundedGetter.GetBounded for a
// value longer than the caller allowed.
var ErrValueTooLarge = errors.New("kv: value larger than the caller allowed")

// ValueSizeError is the error of BoundedGetter.GetBounded for a value
// longer than max bytes: it was not read. Size is its length when it was
// measured (a later read may find another). It wraps ErrValueTooLarge.
type ValueSizeError struct {
	Bucket string
	Size   int // the value's length in bytes
	Max    int // the bound the caller gave
}

// Error describes the refused read.
func (e *ValueSizeError) Error() string {
	return fmt.Sprintf("kv: value of %d bytes in bucket %s, over the %d bytes allowed", e.Size, e.Bucket, e.Max)
}

// Unwrap returns ErrValueTooLarge.
func (e *ValueSizeError) Unwrap() error { return ErrValueTooLarge }

// ReadCoster is implemented by stores whose read of one value holds more
// memory than the value's own Go copy while it runs. ReadCost returns the
// peak bytes a Get of a value of n bytes may hold (LevelDB: the table
// block holding it, a C++ string and the C API's malloc'd copy besides the
// Go slice). A caller that charges a read to a memory budget before it
// starts charges this much; a store without it costs n.
type ReadCoster interface {
	ReadCost(n int) int
}

// TxnBounded is implemented by stores whose cache bounds one transaction:
// Berkeley DB under snapshot isolation keeps every page a transaction
// changes, and the version before it, in its cache until the transaction
// ends, and a transaction that outgrows it fails (ErrCacheFull) or, near
// the limit, crawls through freezer files. MaxTxnChanges is about how many
// small keys (a reference count, a garbage queue entry) one transaction
// may change; 0 means no bound. The engine refuses a commit beyond it.
type TxnBounded interface {
	MaxTxnChanges() int
}

// Panicker is a Store that can be put in a failed state from another
// goroutine, so that every call in progress or to come fails with an
// error wrapping ErrNeedRecover until recovery: Berkeley DB's
// DB_PANIC_ENVIRONMENT. It is the way out of a call that waits inside the
// storage for what cannot come (libdb waiting for cache space it cannot
// write out on a full disk).
type Panicker interface {
	Panic() error
}

// RoomReporter is a Store that keeps disk blocks allocated ahead of its
// files' growth, so that a write that grows a file never meets a full
// file system half-way (Berkeley DB: a torn page no recovery can read).
// RoomFor is called before about n bytes are committed; it makes room
// for them if need be, and returns an error wrapping ErrNoSpace while
// the room cannot be kept: the engine then refuses the commit, as for its
// free-space reserve.
type RoomReporter interface {
	RoomFor(n int64) error
}

// Txn is a transaction. It ends with exactly one Commit or Abort; later calls
// return ErrTxnDone (Abort after the end returns nil, so `defer tx.Abort()` is safe).
// A Txn keeps no reference to a key or value slice after the call that
// passed it returns (it copies what it keeps): callers reuse key buffers
// (engine's apply run builds every oid key in one; kvtest BufferOwnership).
type Txn interface {
	// Get returns a copy of the value, owned by the caller, or ErrNotFound.
	Get(bucket string, key []byte) ([]byte, error)
	// Put stores value under key, replacing any previous value.
	Put(bucket string, key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(bucket string, key []byte) error
	// Cursor opens an ordered cursor; close it before the Txn ends.
	Cursor(bucket string) (Cursor, error)
	// Commit applies every change atomically with the given durability.
	Commit(d Durability) error
	// Abort discards every change.
	Abort() error
}

// Cursor walks a bucket. After positioning, Valid reports whether it points
// at a record; Key and Value return copies owned by the caller.
type Cursor interface {
	First() bool
	Last() bool
	// Seek positions at the first key >= key.
	Seek(key []byte) bool
	Next() bool
	Prev() bool
	Valid() bool
	Key() []byte
	Value() []byte
	// Err reports an I/O or backend error that ended the walk early.
	Err() error
	Close() error
}

// Errors shared by every backend; test with errors.Is.
var (
	ErrNotFound    = errors.New("kv: not found")
	ErrConflict    = errors.New("kv: transaction conflict (deadlock or lock timeout), retry")
	ErrClosed      = errors.New("kv: store closed")
	ErrTxnDone     = errors.New("kv: transaction already committed or aborted")
	ErrReadOnly    = errors.New("kv: read-only")
	ErrInUse       = errors.New("kv: database in use by another process")
	ErrCorrupt     = errors.New("kv: database corrupt")
	ErrNoSpace     = errors.New("kv: no space left on device")
	ErrNoBucket    = errors.New("kv: no such bucket")
	ErrNotDB       = errors.New("kv: not a database of this backend")
	ErrNeedRecover = errors.New("kv: database needs recovery: close every handle and reopen (recovery runs on open)")
	// ErrCacheFull: the store's shared memory (Berkeley DB: its cache, or
	// its lock or transaction tables) could not hold what a transaction
	// needed; a larger cache (--cache-size) is the remedy.
	ErrCacheFull = errors.New("kv: the store's cache or tables are too small for the transaction")
)

// MaxRetries bounds Update's retries of conflicting transactions.
const MaxRetries = 64

// Update runs fn in a writable transaction and commits it with d, retrying
// on ErrConflict up to MaxRetries times. fn must be safe to run again. If
// fn panics, the transaction is aborted and the panic continues.
func Update(ctx context.Context, s Store, d Durability, fn func(Txn) error) error {
	var err error
	for i := 0; i < MaxRetries; i++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		var tx Txn
		tx, err = s.Begin(ctx, true)
		if err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return err
		}
		err = attempt(tx, d, fn)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return err
}

// attempt runs fn in tx and commits tx with d if fn succeeded. tx is ended
// in every case, also when fn panics: the deferred Abort runs before the
// panic goes on (a no-op after Commit), so a panicking fn never leaves a
// transaction open (LevelDB's writer slot taken, Berkeley DB's page locks
// held) for the rest of the process. An Abort that fails after fn did is
// joined to fn's error: Berkeley DB's environment panics when it cannot
// undo a transaction (a full disk and a cache too small to hold what the
// undo dirties), and the transaction's locks are then never released, so
// the caller must learn that the storage needs recovery (ErrNeedRecover),
// not only what fn met.
func attempt(tx Txn, d Durability, fn func(Txn) error) (err error) {
	defer func() {
		if aerr := tx.Abort(); aerr != nil && err != nil {
			err = errors.Join(err, aerr)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(d)
}

// look runs fn in the read transaction tx and aborts tx, also when fn
// panics.
func look(tx Txn, fn func(Txn) error) error {
	defer tx.Abort()
	return fn(tx)
}

// View runs fn in a read-only transaction, retrying on ErrConflict. If fn
// panics, the transaction is aborted and the panic continues.
func View(ctx context.Context, s Store, fn func(Txn) error) error {
	var err error
	for i := 0; i < MaxRetries; i++ {
		var tx Txn
		tx, err = s.Begin(ctx, false)
		if err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return err
		}
		err = look(tx, fn)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return err
}
