package engine

import (
	"log/slog"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultPageSize          = 16 << 10
	DefaultGCGrace           = 60 * time.Second
	DefaultGCRate            = 5000 // objects per second
	DefaultGCBatch           = 256
	DefaultGCIdle            = 2 * time.Second
	DefaultCheckpointEvery   = 60 * time.Second
	DefaultCheckpointLogSize = 16 << 20
	// OIDBlock is how many oids one durable next_oid reservation covers.
	OIDBlock = 1024
)

// Options configure Open. Zero values are the documented defaults.
type Options struct {
	// Create creates a new database if dir is empty (dir must exist).
	Create bool
	// ReadOnly opens without writing anything to the directory.
	ReadOnly bool
	// Backend is "bdb", "leveldb" or "": an existing directory's backend is
	// detected; a new one gets bdb when compiled in, else leveldb.
	Backend string
	// Access is the access method of objects.db, "btree" (default) or
	// "hash"; it matters at creation only (Berkeley DB only).
	Access string
	// CacheSize in bytes; 0 means 64 MiB. It is shared by the backend's
	// cache and the record cache (RecordCache).
	CacheSize int64
	// RecordCache is the part of CacheSize (bytes) given to the engine's
	// cache of recently loaded records (reccache.go); the backend's cache
	// gets the rest. 0 means an eighth of CacheSize; negative disables it.
	RecordCache int64
	// PageSize of objects.db at creation; 0 means 16 KiB.
	PageSize int
	// NoPageChecksums creates the Berkeley DB files without page checksums
	// (at creation only): a page the cache misses is read without the
	// check (docs/OPERATIONS.md measures it), and a damaged one is served
	// as data.
	NoPageChecksums bool
	// Durability of commits. kv.Sync (the zero value): apply runs commit
	// with kv.NoSync and Pending.Wait returns after a group flush
	// (commit.Group, one kv.Store.Flush for every waiter present).
	// kv.WriteNoSync: apply runs commit with kv.WriteNoSync and Wait
	// returns once the commit is applied, without a flush (survives a
	// process crash, not a power loss). kv.NoSync: applied with kv.NoSync,
	// Wait returns once applied (a crash may lose a suffix of the commits,
	// never part of one).
	Durability kv.Durability
	// Checkpoint decides when checkpoints run.
	Checkpoint CheckpointPolicy
	// GC decides when the reference-count collector runs.
	GC GCPolicy
	// GCGrace is how long a garbage candidate is left alone before the
	// collector may delete it; 0 means 60 s, a negative value means none.
	GCGrace time.Duration
	// ValidateGarbage makes the collector check every candidate before it
	// deletes it (FORMAT.md §4 validate_garbage), and run a validation pass
	// over the queue after an unclean shutdown.
	ValidateGarbage bool
	// ForImport accepts a directory left by an incomplete Import, so that
	// a new forced Import can replace its contents.
	ForImport bool
	// MinFreeSpace is the free space (bytes) commits must leave on the
	// database's file system; a commit that would go below it is refused
	// with kv.ErrNoSpace (the server answers E) and nothing is written.
	// 0 means DefaultMinFreeSpace (64 MiB); negative disables the check.
	MinFreeSpace int64
	// Logger receives engine messages; nil means slog.Default().
	Logger *slog.Logger
	// OnRemove is called with the oids the collector or a full collection
	// removes (the server invalidates them), before the transaction that
	// deletes them commits: a commit that then fails makes the report
	// needless, never wrong. It is called with the engine's write lock held
	// and a write transaction open, so it must not call the DB and must
	// not block for long.
	OnRemove func(oids []uint64)
	// OnFullPhase, if set, is called by a full collection at "marked"
	// (marking done, before the sweep), before each "sweep" batch, at
	// "recount", and inside the recount's snapshot at "recount-snapshot",
	// "recount-scan" and "recount-scanned", without engine locks held; the
	// collection waits for it.
	// It lets a caller observe (and tests interleave commits with) the
	// phases of a full collection.
	OnFullPhase func(phase string)
	// OnReplicated, on a replica of a replication group, is called with the
	// oids of each commit applied by replication, in commit order, one
	// call at a time (from the change follower, or from a commit waiting
	// for a read of the change table, which reads it itself), after the
	// record cache dropped them (the server invalidates them for its
	// clients). It must not block for long.
	OnReplicated func(oids []uint64)
	// OnReset, on a site of a replication group, is called when the site
	// is reset in place (a rollback killed its handles, or the master was
	// demoted): the owner closes every client connection, whose caches may
	// hold records the rollback removed, and holds new ones until done is
	// called (nil: nothing to call), once the reset has ended with the
	// handles reopened, the record cache emptied and the change follower
	// following again, or has failed. It is called from the role
	// goroutine before the handles are reopened; why says what happened.
	OnReset func(why error) (done func())
	// Replication, if set, opens the directory as a site of a Berkeley DB
	// replication group (passed to the store as kv.Options.Replication);
	// see repl.go and docs/REPLICATION.md.
	Replication *kv.Replication
}

// GCMode says when the reference-count collector runs.
type GCMode int

const (
	// GCContinuous runs the collector all the time, rate limited (default).
	GCContinuous GCMode = iota
	// GCIdle runs it only when no commit happened for GCPolicy.Idle.
	GCIdle
	// GCManual never runs it on its own; call CollectGarbage.
	GCManual
)

// String returns "continuous", "idle" or "manual".
func (m GCMode) String() string {
	switch m {
	case GCContinuous:
		return "continuous"
	case GCIdle:
		return "idle"
	case GCManual:
		return "manual"
	}
	return "gcmode(?)"
}

// GCPolicy configures the background reference-count collector.
type GCPolicy struct {
	Mode GCMode
	// Rate limits deletions, objects per second; 0 means DefaultGCRate.
	Rate int
	// Batch is the number of candidates per transaction; 0 means
	// DefaultGCBatch.
	Batch int
	// Idle is the quiet time GCIdle waits for; 0 means DefaultGCIdle.
	Idle time.Duration
}

// CheckpointPolicy configures background checkpoints. A checkpoint runs
// when any enabled condition holds; Manual disables them all.
type CheckpointPolicy struct {
	// Every runs a checkpoint after this much time; 0 means 60 s, negative
	// disables the time condition.
	Every time.Duration
	// LogBytes runs one after about this many bytes were committed (an
	// estimate of log volume: record bytes plus bookkeeping); 0 means
	// 16 MiB, negative disables it.
	LogBytes int64
	// Commits runs one after this many commits; 0 disables it.
	Commits int
	// Manual disables background checkpoints (DB.Checkpoint still works).
	Manual bool
	// KeepLogs keeps log files after checkpoints (for catastrophic recovery
	// and incremental backups); otherwise logs no longer needed are removed.
	KeepLogs bool
}

func (o *Options) grace() time.Duration {
	switch {
	case o.GCGrace == 0:
		return DefaultGCGrace
	case o.GCGrace < 0:
		return 0
	}
	return o.GCGrace
}

func (p GCPolicy) rate() int {
	if p.Rate <= 0 {
		return DefaultGCRate
	}
	return p.Rate
}

func (p GCPolicy) batch() int {
	if p.Batch <= 0 {
		return DefaultGCBatch
	}
	return p.Batch
}

func (p GCPolicy) idle() time.Duration {
	if p.Idle <= 0 {
		return DefaultGCIdle
	}
	return p.Idle
}

// recordCache is the record cache's budget in bytes (0: none).
func (o Options) recordCache() int64 {
	switch {
	case o.RecordCache < 0:
		return 0
	case o.RecordCache > 0:
		return o.RecordCache
	}
	total := o.CacheSize
	if total <= 0 {
		total = kv.DefaultCacheSize
	}
	return total / 8
}

// backendCache is what the backend's cache gets of CacheSize (never less
// than half of it).
func (o Options) backendCache() int64 {
	total := o.CacheSize
	if total <= 0 {
		total = kv.DefaultCacheSize
	}
	return max(total-o.recordCache(), total/2)
}
