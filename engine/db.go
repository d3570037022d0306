package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// DB is an open Durus database. It is safe for use by many goroutines.
type DB struct {
	dir     string
	opts    Options
	store   kv.Store
	backend string
	log     *slog.Logger
	hash    bool // objects.db uses hash access: cursor order is not oid order
	unclean bool // in_use was found set on open
	// groupSite: the directory is a site of a replication group (opened as
	// one, or its meta names the group's sites): in_use is the master's.
	groupSite bool
	space     spaceGuard
	cache     *recCache // recently loaded records; see reccache.go
	share     loadShare // one copy of a large record among concurrent loads; see loadShared

	// writeMu serialises every write transaction: commits, collector
	// batches, full-collection sweeps, imports, checks with repair. Both
	// backends then never see two writers (LevelDB has no writer isolation;
	// Berkeley DB cannot deadlock between our own writers). It also says
	// since when it is held, for the watchdog (breakStuckWrite).
	writeMu writeLock

	// pipe is the commit pipeline: staged commits, in-flight oids, apply
	// runs and group flushes (pipeline.go, which states its contract and
	// the engine's lock graph).
	pipe pipeline

	// delGate orders Stage's reference check (rule 10) against deletions:
	// Stage holds it shared while it pins its references and checks that
	// they exist; the collector and the full collection's sweep hold it
	// exclusively around each deleting transaction. So an object is
	// either gone before a commit referring to it is checked, or pinned
	// (and spared) before it could be deleted.
	delGate sync.RWMutex

	// allocMu guards the allocation cursor and the durable reservation.
	allocMu  sync.Mutex
	cursor   atomic.Uint64 // h: every oid below was handed out or reserved before
	reserved atomic.Uint64 // durable next_oid; changed only under allocMu

	size       atomic.Uint64 // mirror of meta "size", updated after each write txn
	lastCommit atomic.Int64  // UnixNano of the last commit, for GCIdle
	commits    atomic.Uint64
	bytes      atomic.Uint64 // bytes committed since open
	gcStats    gcProgress    // mirror of meta "gc"; owned by writeMu
	gcMu       sync.Mutex    // serialises collector batches (before writeMu)
	gcPos      []byte        // collector resume key in garbage.db; owned by gcMu
	importing  atomic.Bool   // an incomplete import's data is present: commits refused

	full fullState // online full collection; see full.go

	ckpt  ckptState  // checkpoint bookkeeping; see checkpoint.go
	fatal fatalState // see fatal.go
	role  roleState  // replication role; see repl.go

	changes      changeState   // the replicated change table; see repl_changes.go
	fwd          fwdHolds      // replica: oids of forwarded commits loads wait for; see repl_hold.go
	loopsStarted bool          // startWriting started the background loops (once per DB)
	demoted      bool          // lost the master role, not yet replica or master again; owned by roleLoop
	replica      atomic.Bool   // a replication site that is not the master: writes refused
	permFailed   atomic.Uint64 // commits failed with ErrPermFailed since open
	resetReq     chan error    // site: reset requests for the role goroutine (buffered 1); see repl_reset.go
	resets       atomic.Uint64 // site: resets in place since open

	ctx    context.Context // cancelled by Close; background work stops
	cancel context.CancelFunc
	wg     sync.WaitGroup // background goroutines
	gcKick chan struct{}  // wakes the collector

	bgMu      sync.Mutex // orders wg.Add of Pack with Close
	closing   bool       // Close has begun; owned by bgMu
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

// Stats describe the database; see DB.Stats.
type Stats struct {
	Backend          string        // "bdb" or "leveldb"
	Access           string        // objects.db access method: "btree" or "hash"
	Objects          uint64        // meta size
	NextOID          uint64        // durable next_oid
	AllocCursor      uint64        // in-memory allocation cursor
	GCQueue          uint64        // entries in garbage.db
	GCCollections    uint64        // meta gc: collector transactions that freed objects + full collections
	GCFreed          uint64        // meta gc: objects freed
	FullCollecting   bool          // a full collection (or an import) is running
	Commits          uint64        // commits since open
	CommittedBytes   uint64        // record bytes (+8 per record) committed since open
	Flushes          uint64        // group flushes since open
	FlushTime        time.Duration // time the group flushes spent flushing the store (write and fsync) since open
	RecordCacheHits  uint64        // loads answered by the record cache since open
	RecordCacheMiss  uint64        // loads that read the store since open
	RecordCacheBytes int64         // record cache size now (records + bookkeeping)
	UncleanShutdown  bool          // in_use was set when opened (never on a replication site: see ReplicationSite)
	ReplicationSite  bool          // a site of a replication group, where in_use is the master's and says nothing of this directory
	FullUnfinished   string        // meta full: start of a full collection's sweep that did not finish, or ""
	ReadOnly         bool          // opened read-only
	Durability       string        // "sync", "write-nosync" or "nosync"
	LastCheckpoint   time.Time     // last checkpoint run by this DB (zero if none since open)
	CheckpointsSince uint64        // checkpoints run since open
}

// Dir returns the database directory.
func (db *DB) Dir() string { return db.dir }

// Backend returns the kv backend name, "bdb" or "leveldb".
func (db *DB) Backend() string { return db.backend }

// Store returns the underlying kv.Store (for tools such as backup); the DB
// owns it.
func (db *DB) Store() kv.Store { return db.store }

// ReadOnly reports whether the DB was opened read-only.
func (db *DB) ReadOnly() bool { return db.opts.ReadOnly }

// Load returns the stored record of oid, byte for byte as committed, or an
// error wrapping ErrNotFound naming the oid. The record may be shared with
// the record cache and other callers: it must not be modified.
func (db *DB) Load(oid uint64) ([]byte, error) {
	return db.load(oid, -1)
}

// LoadBounded is Load for a caller that charges the memory of a large
// record to a budget before the record is read (the server's budget of
// bytes in flight). A record to be read from the store whose read would
// hold more than limit bytes is not read when its size is known beforehand:
// the error is a *RecordSizeError (wrapping ErrRecordLarge) giving the
// bytes to charge (Need), and the caller may call again with limit at
// least Need once it has them. The size is known beforehand on Berkeley DB
// always (DB->get measures a value without reading it; kv.BoundedGetter),
// and on LevelDB once a load has read the record since it was last
// written (the record cache keeps the size of records over 32 KiB it does
// not hold, too large for it or evicted, while it is enabled). A record already in memory (cached, or held by a
// concurrent load) is returned whatever its size, as is one whose size
// could not be known before it was read: callers check len.
func (db *DB) LoadBounded(oid uint64, limit int) ([]byte, error) {
	return db.load(oid, max(limit, 0))
}

// Caches reports whether the record cache holds rec, the very memory a
// load returned, for oid: a caller letting go of rec then frees nothing
// (the server's budget of bytes in flight counts it as no garbage).
func (db *DB) Caches(oid uint64, rec []byte) bool { return db.cache.holds(oid, rec) }

// load is Load (limit < 0) and LoadBounded (limit ≥ 0).
func (db *DB) load(oid uint64, limit int) ([]byte, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	db.waitStaged(oid)
	db.waitForwarded(oid)
	rec, epoch, size, hit := db.cache.lookup(oid)
	if hit {
		return rec, nil
	}
	if db.cache.shard(oid).budget > 0 {
		rec, err := db.loadShared(oid, epoch, size, limit)
		return rec, db.loadErr(err)
	}
	rec, err := db.loadStore(oid, epoch, limit)
	return rec, db.loadErr(err)
}

// loadErr returns err; a replica's load that met dead handles (a rollback)
// asks for a reset of the site first: its clients' caches may hold
// rolled-back records.
func (db *DB) loadErr(err error) error {
	if err != nil && db.opts.Replication != nil && errors.Is(err, kv.ErrHandleDead) {
		_ = db.replErr(err)
	}
	return err
}

// readCost returns the bytes a read of a record of n bytes holds at its
// peak (kv.ReadCoster; n when the store does not say).
func (db *DB) readCost(n int) int {
	if rc, ok := db.store.(kv.ReadCoster); ok {
		return rc.ReadCost(n)
	}
	return n
}

// sizeError is LoadBounded's refusal of oid, a record of size bytes, under
// limit.
func (db *DB) sizeError(oid uint64, size, limit int) error {
	return &RecordSizeError{OID: oid, Size: size, Need: db.readCost(size), Max: limit}
}

// loadStore reads oid from the store and offers it to the record cache;
// limit ≥ 0 bounds the read where the store can measure a value first
// (kv.BoundedGetter).
func (db *DB) loadStore(oid uint64, epoch uint64, limit int) ([]byte, error) {
	var rec []byte
	var err error
	if bg, ok := db.store.(kv.BoundedGetter); ok && limit >= 0 {
		rec, err = bg.GetBounded(BucketObjects, record.OIDBytes(oid), limit)
		if err != nil {
			var se *kv.ValueSizeError
			if errors.As(err, &se) {
				return nil, db.sizeError(oid, se.Size, limit)
			}
		}
	} else if g, ok := db.store.(kv.Getter); ok {
		// One read outside a transaction: the hot path of L and B.
		rec, err = g.Get(BucketObjects, record.OIDBytes(oid))
	} else {
		err = kv.View(db.ctx, db.store, func(tx kv.Txn) error {
			v, err := tx.Get(BucketObjects, record.OIDBytes(oid))
			rec = v
			return err
		})
	}
	if errors.Is(err, kv.ErrNotFound) {
		return nil, fmt.Errorf("engine: load oid %d: %w", oid, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: load oid %d: %w", oid, db.noteErr(err))
	}
	if _, err := record.ParseFor(oid, rec); err != nil {
		// Commits store only records passing R1–R4, so this is damage on
		// disk (a file without page checksums): refuse it, naming the oid,
		// rather than hand a client bytes it would misread.
		return nil, fmt.Errorf("engine: load oid %d: the stored record is damaged (run `durusbdb check`): %w (%w)", oid, err, kv.ErrCorrupt)
	}
	db.cache.fill(oid, rec, epoch)
	return rec, nil
}

// shareMin is the size from which a loaded record is remembered (weakly)
// for later loads while some caller still holds it.
const shareMin = 1 << 20

// loadShards is the number of independently locked parts of loadShare.
const loadShards = 16

// loadShare lets concurrent loads of one oid share one copy: a load joins
// a read of the store already in progress (singleflight), and a large
// record stays findable through a weak pointer as long as some caller (a
// server writing it to a slow client) holds it. Without it, n clients
// loading one 100 MB record cost n copies.
//
// Coherence uses the record cache's shard epoch, which every writer of the
// objects bucket bumps after its transaction commits (reccache.go): a load
// shares a read or copy only if the epoch it read is the one the read or
// copy started with, so no load returns a record older than the last
// commit finished before it began. With the record cache disabled (no
// epoch) nothing is shared.
type loadShare struct {
	shards [loadShards]loadShard
}

type loadShard struct {
	mu    sync.Mutex
	calls map[uint64]*loadCall  // reads of the store in progress; owned by mu
	recs  map[uint64]sharedLoad // large records recently loaded; owned by mu
	sweep int                   // len(recs) at which dead entries are next swept
}

// loadCall is one read of the store that concurrent loads join.
type loadCall struct {
	done  sync.WaitGroup // done when rec and err are set
	epoch uint64
	limit int // the read's bound (LoadBounded's limit; < 0: none)
	rec   []byte
	err   error
}

// covers reports whether a load with bound limit may take c's outcome: c
// read with no bound, or one at least as large (a smaller one may have
// refused a record that limit allows).
func (c *loadCall) covers(limit int) bool {
	return c.limit < 0 || (limit >= 0 && c.limit >= limit)
}

// sharedLoad is a weak reference to a large loaded record.
type sharedLoad struct {
	p     weak.Pointer[byte]
	n     int
	epoch uint64
}

// loadShared is Load's read of the store with sharing (see loadShare);
// epoch is the record-cache shard epoch read after waitStaged, size the
// record's size if the cache knows it (0 if not), limit LoadBounded's
// bound (< 0: none). A record held by another load is shared whatever its
// size; one known to be larger than the bound is refused before a read.
func (db *DB) loadShared(oid uint64, epoch uint64, size, limit int) ([]byte, error) {
	sh := &db.share.shards[(oid^oid>>17)%loadShards]
	sh.mu.Lock()
	if r, ok := sh.recs[oid]; ok {
		if p := r.p.Value(); p != nil && r.epoch == epoch {
			sh.mu.Unlock()
			return unsafe.Slice(p, r.n), nil
		}
		delete(sh.recs, oid)
	}
	if c, ok := sh.calls[oid]; ok && c.epoch == epoch && c.covers(limit) {
		sh.mu.Unlock()
		c.done.Wait()
		return c.rec, c.err
	}
	if limit >= 0 && size > 0 && db.readCost(size) > limit {
		sh.mu.Unlock()
		return nil, db.sizeError(oid, size, limit)
	}
	c := &loadCall{epoch: epoch, limit: limit}
	c.done.Add(1)
	if sh.calls == nil {
		sh.calls = make(map[uint64]*loadCall)
	}
	// A call with a smaller bound in progress is replaced: later loads
	// join this one, which covers more.
	sh.calls[oid] = c
	sh.mu.Unlock()

	// On a panic in the read, joiners get this error and the call is
	// forgotten, as after any read.
	c.err = fmt.Errorf("engine: load oid %d: read of the store failed", oid)
	defer func() {
		sh.mu.Lock()
		if sh.calls[oid] == c {
			delete(sh.calls, oid)
		}
		if c.err == nil && len(c.rec) >= shareMin {
			if sh.recs == nil {
				sh.recs = make(map[uint64]sharedLoad)
			}
			sh.recs[oid] = sharedLoad{p: weak.Make(unsafe.SliceData(c.rec)), n: len(c.rec), epoch: epoch}
			if len(sh.recs) >= sh.sweep {
				maps.DeleteFunc(sh.recs, func(_ uint64, r sharedLoad) bool { return r.p.Value() == nil })
				sh.sweep = max(2*len(sh.recs), 16)
			}
		}
		sh.mu.Unlock()
		c.done.Done()
	}()
	c.rec, c.err = db.loadStore(oid, epoch, limit)
	return c.rec, c.err
}

// AllocCursor returns h: every oid below h has been handed out in this run
// or reserved by an earlier one (PROTOCOL.md A4).
func (db *DB) AllocCursor() uint64 { return db.cursor.Load() }

// NextOID returns the durable meta next_oid.
func (db *DB) NextOID() uint64 { return db.reserved.Load() }

// AllocOIDs hands out the contiguous run [first, first+n). Before an oid
// of a new block of OIDBlock is handed out, next_oid is raised in a durable
// transaction (FORMAT.md §3); if that fails nothing is handed out. On a
// read-only DB the oids come from memory only (they can never be
// committed). The master of a replication group hands out nothing while
// too few sites have joined for a quorum (ErrNoQuorum), as it commits
// nothing then.
func (db *DB) AllocOIDs(n int) (uint64, error) {
	if n < 0 {
		return 0, fmt.Errorf("engine: allocate %d oids: negative count", n)
	}
	if db.closed.Load() {
		return 0, ErrClosed
	}
	db.allocMu.Lock()
	defer db.allocMu.Unlock()
	first := db.cursor.Load()
	end := first + uint64(n)
	if end < first {
		return 0, fmt.Errorf("engine: allocate %d oids at %d: oid space exhausted", n, first)
	}
	if db.replica.Load() {
		return 0, fmt.Errorf("engine: allocate %d oids: %w", n, ErrNotMaster)
	}
	// Quorum-durable like a commit: a reservation no quorum can
	// acknowledge could be handed out again by another master.
	if !db.opts.ReadOnly {
		if err := db.quorumShort(); err != nil {
			return 0, fmt.Errorf("engine: allocate %d oids: %w: %w", n, ErrNoQuorum, err)
		}
	}
	if res := db.reserved.Load(); end > res && !db.opts.ReadOnly {
		blocks := (end - res + OIDBlock - 1) / OIDBlock
		next, err := db.reserveTo(res + blocks*OIDBlock)
		if err != nil {
			return 0, fmt.Errorf("engine: reserve oids up to %d: %w", res+blocks*OIDBlock, err)
		}
		db.reserved.Store(next)
	}
	db.cursor.Store(end)
	return first, nil
}

// raiseCursor makes sure the cursor and the durable reservation are at
// least h (after an import). The caller holds neither allocMu nor writeMu.
func (db *DB) raiseCursor(h uint64) error {
	db.allocMu.Lock()
	defer db.allocMu.Unlock()
	if h > db.reserved.Load() && !db.opts.ReadOnly {
		next, err := db.reserveTo((h + OIDBlock - 1) / OIDBlock * OIDBlock)
		if err != nil {
			return fmt.Errorf("engine: reserve oids up to %d: %w", h, err)
		}
		db.reserved.Store(next)
	}
	if h > db.cursor.Load() {
		db.cursor.Store(h)
	}
	return nil
}

// reserveTo raises meta next_oid to at least next in a durable
// transaction, never lowering it, and returns the value stored. Lock
// order: allocMu (held by the caller) before writeMu (taken here).
func (db *DB) reserveTo(next uint64) (uint64, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var stored uint64
	err := kv.Update(context.Background(), db.store, kv.Sync, func(tx kv.Txn) error {
		stored = next
		v, err := tx.Get(BucketMeta, []byte(MetaNextOID))
		if err == nil {
			cur, err := decodeInt8(MetaNextOID, v)
			if err != nil {
				return err
			}
			if cur > stored {
				stored = cur
			}
		} else if !errors.Is(err, kv.ErrNotFound) {
			return err
		}
		return tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(stored))
	})
	return stored, err
}

// Size returns the number of stored records, O(1) (meta size). On a
// replica it reads the replicated counter: replication writes the store
// under the engine, whose own count stays at what the site had when it
// opened or was demoted.
func (db *DB) Size() (uint64, error) {
	if db.closed.Load() {
		return 0, ErrClosed
	}
	if db.replica.Load() {
		size, _, err := db.replicatedCounters()
		return size, err
	}
	return db.size.Load(), nil
}

// replicatedCounters reads the size counter and the oid reservation of
// meta (a replica's, written by replication).
func (db *DB) replicatedCounters() (size, nextOID uint64, err error) {
	err = kv.View(db.ctx, db.store, func(tx kv.Txn) error {
		var err error
		if size, err = db.getSize(tx); err != nil {
			return err
		}
		v, err := tx.Get(BucketMeta, []byte(MetaNextOID))
		switch {
		case errors.Is(err, kv.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		nextOID, err = decodeInt8(MetaNextOID, v)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("engine: %s: replicated counters: %w", db.dir, err)
	}
	return size, nextOID, nil
}

// Stats returns counters; GCQueue counts garbage.db entries (a cursor walk
// over the queue, normally short). Total bytes stored are not kept (not
// cheap) and not reported.
func (db *DB) Stats() (Stats, error) {
	if db.closed.Load() {
		return Stats{}, ErrClosed
	}
	st := Stats{
		Backend:         db.backend,
		Access:          "btree",
		Objects:         db.size.Load(),
		NextOID:         db.NextOID(),
		AllocCursor:     db.cursor.Load(),
		FullCollecting:  db.full.running.Load(),
		Commits:         db.commits.Load(),
		CommittedBytes:  db.bytes.Load(),
		Flushes:         db.pipe.flushes.Flushes(),
		FlushTime:       time.Duration(db.pipe.flushNanos.Load()),
		RecordCacheHits: db.cache.hits.Load(),
		RecordCacheMiss: db.cache.misses.Load(),
		UncleanShutdown: db.unclean && !db.groupSite,
		ReplicationSite: db.groupSite,
		ReadOnly:        db.opts.ReadOnly,
		Durability:      db.opts.Durability.String(),
	}
	st.RecordCacheBytes, _ = db.cache.size()
	if db.hash {
		st.Access = "hash"
	}
	st.LastCheckpoint, st.CheckpointsSince = db.ckpt.info()
	if st.CheckpointsSince == 0 {
		st.LastCheckpoint = time.Time{} // c.last is the open time: not a checkpoint
	}
	if db.replica.Load() {
		size, next, err := db.replicatedCounters()
		if err != nil {
			return st, fmt.Errorf("engine: stats: %w", err)
		}
		st.Objects, st.NextOID = size, next
	}
	err := kv.View(db.ctx, db.store, func(tx kv.Txn) error {
		st.GCQueue = 0
		v, err := tx.Get(BucketMeta, []byte(MetaGC))
		if err == nil {
			p := decodeGC(v)
			st.GCCollections, st.GCFreed = p.Collections, p.Freed
		} else if !errors.Is(err, kv.ErrNotFound) {
			return err
		}
		switch v, err := tx.Get(BucketMeta, []byte(MetaFull)); {
		case err == nil:
			st.FullUnfinished = string(v)
		case !errors.Is(err, kv.ErrNotFound):
			return err
		}
		c, err := tx.Cursor(BucketGarbage)
		if err != nil {
			return err
		}
		defer c.Close()
		for ok := c.First(); ok; ok = c.Next() {
			st.GCQueue++
		}
		return c.Err()
	})
	if err != nil {
		return st, fmt.Errorf("engine: stats: %w", err)
	}
	return st, nil
}

// Close stops background work, clears in_use, runs a checkpoint and
// closes the store. Calling it again returns the first result.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.bgMu.Lock()
		db.closing = true
		db.bgMu.Unlock()
		db.cancel()
		if !db.waitBackground() {
			// Background work is stuck inside the failed storage: the
			// store cannot be closed under it (nor the queue applied).
			// The process exits without closing it; the next open runs
			// recovery.
			db.closed.Store(true)
			db.closeErr = fmt.Errorf("engine: close %s: background work still waits inside the storage %s after it failed (%w); left as it is: the next open recovers",
				db.dir, stuckWait, db.FailErr())
			db.log.Error("engine: "+db.closeErr.Error(), "dir", db.dir)
			return
		}
		db.drainQueue()
		db.closed.Store(true)
		var errs []error
		if !db.opts.ReadOnly && !db.replica.Load() { // a replica writes nothing
			db.writeMu.Lock()
			err := kv.Update(context.Background(), db.store, kv.Sync, func(tx kv.Txn) error {
				return tx.Delete(BucketMeta, []byte(MetaInUse))
			})
			db.writeMu.Unlock()
			if err != nil && !errors.Is(err, kv.ErrPermFailed) {
				errs = append(errs, fmt.Errorf("engine: close %s: clear in_use: %w", db.dir, err))
			}
			if err := db.store.Checkpoint(context.Background(), !db.opts.Checkpoint.KeepLogs); err != nil {
				errs = append(errs, fmt.Errorf("engine: close %s: checkpoint: %w", db.dir, err))
			}
		}
		if err := db.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("engine: close %s: %w", db.dir, err))
		}
		db.space.close()
		db.closeErr = errors.Join(errs...)
	})
	return db.closeErr
}
