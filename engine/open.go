package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// metaView is meta as read at open.
type metaView struct {
	vals map[string][]byte
}

func (m metaView) has(k string) bool { _, ok := m.vals[k]; return ok }

// hasPrefix reports whether a key of m starts with prefix.
func (m metaView) hasPrefix(prefix string) bool {
	for k := range m.vals {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// openWith finishes Open over an opened store: it creates the layout in a
// new database, or verifies and upgrades an existing one, and starts the
// background work. On error it closes the store.
func openWith(ctx context.Context, dir string, store kv.Store, opts Options, created bool) (_ *DB, err error) {
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	db := newDB(dir, store, opts)
	defer func() {
		if err != nil {
			db.cancel()
			db.space.close()
		}
	}()
	if opts.Replication != nil {
		return db, db.openSite(ctx, created)
	}
	m, err := db.loadMeta(ctx, created)
	if err != nil {
		return nil, err
	}
	c, err := db.loadCounters(ctx, m)
	if err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := db.startWriting(ctx, c); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// newDB returns the DB over store, before anything is read.
func newDB(dir string, store kv.Store, opts Options) *DB {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	db := &DB{
		dir:     dir,
		opts:    opts,
		store:   store,
		backend: store.Backend(),
		log:     log,
		gcKick:  make(chan struct{}, 1),
	}
	db.cache = newRecCache(opts.recordCache())
	db.pipe.init(db.applyQueued, db.applyAndFlush)
	db.fatal.ch = make(chan struct{})
	db.ckpt.last = time.Now()
	reserve := opts.MinFreeSpace
	if reserve == 0 {
		reserve = DefaultMinFreeSpace
	}
	db.space = newSpaceGuard(dir, reserve, db.log)
	db.ctx, db.cancel = context.WithCancel(context.Background())
	return db
}

// loadMeta reads meta, writing the layout first in a new database
// (created, or a writable open of an empty store), checks the layout and
// the access method, and takes the import mark, the collector's
// statistics and the unclean flag from it.
func (db *DB) loadMeta(ctx context.Context, created bool) (metaView, error) {
	dir, store, opts := db.dir, db.store, db.opts
	m, empty, err := readMeta(ctx, store)
	if err != nil {
		return m, fmt.Errorf("engine: open %s: read meta: %w", dir, err)
	}
	if !m.has(MetaLayout) {
		if !empty || opts.ReadOnly {
			if empty && opts.ReadOnly {
				return m, fmt.Errorf("engine: open %s read-only: database holds no layout yet (never initialised): %w", dir, kv.ErrNotDB)
			}
			return m, layoutError(dir, "(meta layout absent)", nil)
		}
		created = true
	}
	if created {
		if err := db.initLayout(ctx); err != nil && !db.appliedUnacked(err, "the layout") {
			return m, fmt.Errorf("engine: create %s: %w", dir, err)
		}
		if m, _, err = readMeta(ctx, store); err != nil {
			return m, fmt.Errorf("engine: open %s: read meta: %w", dir, err)
		}
	}
	if l := string(m.vals[MetaLayout]); l != Layout {
		return m, layoutError(dir, fmt.Sprintf("%q", l), nil)
	}
	switch a := string(m.vals[MetaAccess]); a {
	case "btree", "":
	case "hash":
		db.hash = true
	default:
		return m, layoutError(dir, fmt.Sprintf("%s with access %q", Layout, a), nil)
	}
	if m.has(MetaImport) {
		if !opts.ForImport {
			return m, fmt.Errorf("engine: open %s: an import started %s did not finish; run the same `durusbdb migrate` again with --force, or restore a backup: %w",
				dir, m.vals[MetaImport], ErrImportIncomplete)
		}
		db.importing.Store(true)
	}
	if v, ok := m.vals[MetaGC]; ok {
		db.gcStats = decodeGC(v)
	}
	db.unclean = m.has(MetaInUse)
	// On a replication site in_use is the master's, replicated: set
	// while the group has a running master, not a sign of a crash here,
	// also when the directory is opened on its own (a tool, offline): its
	// meta names the group's sites.
	db.groupSite = db.opts.Replication != nil || m.hasPrefix(MetaSiteAddrPrefix)
	if db.unclean && !db.groupSite {
		db.log.Warn("engine: database was not closed cleanly (in_use set); the backend ran recovery", "dir", dir)
	}
	return m, nil
}

// counters are meta's size and next_oid as loaded, and whether each must
// be stored again (absent, or next_oid not above the largest stored oid).
type counters struct {
	size, next       uint64
	fixSize, fixNext bool
}

// loadCounters loads size (rebuilt by a full count when absent) and
// next_oid (never below the largest stored oid + 1) into db.
func (db *DB) loadCounters(ctx context.Context, m metaView) (counters, error) {
	var c counters
	var err error
	dir := db.dir
	if v, ok := m.vals[MetaSize]; ok {
		if c.size, err = decodeInt8(MetaSize, v); err != nil {
			return c, fmt.Errorf("engine: open %s: %w", dir, err)
		}
	} else {
		n, err := db.countObjects(ctx)
		if err != nil {
			return c, fmt.Errorf("engine: open %s: count objects: %w", dir, err)
		}
		c.size, c.fixSize = n, true
		db.log.Info("engine: meta size absent; counted objects", "dir", dir, "objects", n, "stored", !db.opts.ReadOnly)
	}
	db.size.Store(c.size)

	if v, ok := m.vals[MetaNextOID]; ok {
		if c.next, err = decodeInt8(MetaNextOID, v); err != nil {
			return c, fmt.Errorf("engine: open %s: %w", dir, err)
		}
	} else {
		c.fixNext = true
	}
	if c.fixNext || !db.hash {
		top, ok, err := db.maxStoredOID(ctx, c.fixNext)
		if err != nil {
			return c, fmt.Errorf("engine: open %s: find largest oid: %w", dir, err)
		}
		if ok && top+1 > c.next {
			if !c.fixNext {
				db.log.Warn("engine: next_oid is not above the largest stored oid; raised", "dir", dir, "next_oid", c.next, "largest", top)
			}
			c.next, c.fixNext = top+1, true
		}
	}
	db.reserved.Store(c.next)
	db.cursor.Store(c.next)
	return c, nil
}

// startWriting finishes a writable open: it stores the counters c that
// need it and marks meta in use (one durable transaction), validates the
// garbage queue and checkpoints after an unclean close, and starts the
// background loops.
func (db *DB) startWriting(ctx context.Context, c counters) error {
	dir, opts := db.dir, db.opts
	err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
		if c.fixSize {
			if err := putSize(tx, c.size); err != nil {
				return err
			}
		}
		if c.fixNext {
			if err := tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(c.next)); err != nil {
				return err
			}
		}
		if err := tx.Put(BucketMeta, []byte(MetaWriter), []byte("durusbdb "+Version)); err != nil {
			return err
		}
		return tx.Put(BucketMeta, []byte(MetaInUse), []byte("1"))
	})
	if err != nil && !db.appliedUnacked(err, "the in-use mark") {
		return fmt.Errorf("engine: open %s: mark in use: %w", dir, err)
	}
	if db.unclean && opts.ValidateGarbage {
		if err := db.validateQueue(ctx); err != nil {
			return fmt.Errorf("engine: open %s: validate garbage: %w", dir, err)
		}
	}
	if db.unclean {
		// An owner that crashes again and again may never reach the
		// checkpoint policy's thresholds within one life, and the log
		// would keep every life's work (66 quick kills under a
		// garbage churn left 5.5 GB of logs). So a recovered
		// directory is checkpointed now and its unneeded logs removed
		// (unless kept).
		if err := db.store.Checkpoint(ctx, !opts.Checkpoint.KeepLogs); err != nil {
			return fmt.Errorf("engine: open %s: checkpoint after recovery: %w", dir, err)
		}
	}
	db.resumeFull(ctx, opts.GC.Mode != GCManual) // also on a promotion: the old master's may be replicated
	if db.loopsStarted {
		return nil // a site master again after a DUPMASTER election
	}
	db.loopsStarted = true
	if opts.GC.Mode != GCManual {
		db.wg.Add(1)
		go db.gcLoop()
	}
	if !opts.Checkpoint.Manual {
		db.ckpt.kick = make(chan struct{}, 1)
		db.wg.Add(1)
		go db.ckptLoop()
	}
	db.wg.Add(2)
	go db.tick(probeEvery, db.watch)
	go db.tick(probeEvery, db.breakStuckWrite)
	return nil
}

// initLayout writes the meta of a new database in one durable transaction.
func (db *DB) initLayout(ctx context.Context) error {
	access := "btree"
	if db.opts.Access == "hash" {
		access = "hash"
	}
	db.hash = access == "hash"
	return kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
		put := func(k string, v []byte) error { return tx.Put(BucketMeta, []byte(k), v) }
		for _, e := range []struct {
			k string
			v []byte
		}{
			{MetaLayout, []byte(Layout)},
			{MetaAccess, []byte(access)},
			{MetaSize, int8Bytes(0)},
			{MetaNextOID, int8Bytes(0)},
			{MetaCreated, []byte(time.Now().UTC().Format(time.RFC3339))},
			{MetaWriter, []byte("durusbdb " + Version)},
			{MetaGC, gcProgress{}.encode()},
		} {
			if err := put(e.k, e.v); err != nil {
				return err
			}
		}
		if db.store.Backend() == "leveldb" {
			return put(MetaBackend, []byte("leveldb"))
		}
		return nil
	})
}

// appliedUnacked reports whether err, from the commit of what during the
// open, is a replication master's commit applied here but not acknowledged
// by a quorum (kv.ErrPermFailed), and logs it if so. The open goes on
// then: a new group's first master meets it when a replica's connection
// breaks just after the ack policy went to quorum, a promoted master when
// the group is short. Its later commits wait for the quorum themselves,
// and the replicas receive it with the log that follows.
func (db *DB) appliedUnacked(err error, what string) bool {
	if db.opts.Replication == nil || !errors.Is(err, kv.ErrPermFailed) {
		return false
	}
	db.log.Warn("engine: open: written here but not yet acknowledged by a quorum of replicas; commits wait for the quorum", "dir", db.dir, "what", what, "err", err)
	return true
}

// readMeta reads every meta key; empty reports whether objects, refcounts
// and garbage hold nothing.
func readMeta(ctx context.Context, store kv.Store) (metaView, bool, error) {
	m := metaView{vals: map[string][]byte{}}
	empty := true
	err := kv.View(ctx, store, func(tx kv.Txn) error {
		clear(m.vals)
		empty = true
		c, err := tx.Cursor(BucketMeta)
		if err != nil {
			return err
		}
		for ok := c.First(); ok; ok = c.Next() {
			m.vals[string(c.Key())] = c.Value()
		}
		err = c.Err()
		c.Close()
		if err != nil {
			return err
		}
		for _, b := range []string{BucketObjects, BucketRefcounts, BucketGarbage} {
			c, err := tx.Cursor(b)
			if err != nil {
				return err
			}
			if c.First() {
				empty = false
			}
			err = c.Err()
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	})
	return m, empty, err
}

// countObjects counts the records of objects.db.
func (db *DB) countObjects(ctx context.Context) (uint64, error) {
	var n uint64
	err := db.scanBucket(ctx, BucketObjects, false, func(_, _ []byte) error { n++; return nil })
	return n, err
}

// maxStoredOID returns the largest stored oid: the last key of a btree, or
// (when scanHash and the access method is hash) the maximum over a scan.
func (db *DB) maxStoredOID(ctx context.Context, scanHash bool) (uint64, bool, error) {
	if db.hash {
		if !scanHash {
			return 0, false, nil
		}
		var top uint64
		found := false
		err := db.scanKeys(ctx, BucketObjects, func(oid uint64) error {
			top, found = max(top, oid), true
			return nil
		})
		return top, found, err
	}
	var top uint64
	found := false
	err := kv.View(ctx, db.store, func(tx kv.Txn) error {
		c, err := tx.Cursor(BucketObjects)
		if err != nil {
			return err
		}
		defer c.Close()
		found = false
		if c.Last() {
			if k := c.Key(); len(k) == 8 {
				top, found = record.OID(k), true
			}
		}
		return c.Err()
	})
	return top, found, err
}

// Open opens the database in dir, which must exist. With opts.Create an
// empty directory gets a new database (backend opts.Backend, or bdb when
// compiled in, else leveldb). An existing directory's backend is detected
// (FORMAT.md §5); a directory holding anything else, or a layout other
// than durusbdb/1, fails with ErrLayout naming the directory, what was
// found, the supported layout and the files present. Writable opens set
// meta in_use durably and start the background collector and
// checkpointer per Options; close the DB with Close.
func Open(ctx context.Context, dir string, opts Options) (*DB, error) {
	kind, files, err := dirKind(dir)
	if err != nil {
		return nil, err
	}
	switch opts.Access {
	case "", "btree", "hash":
	default:
		return nil, fmt.Errorf("engine: open %s: access must be btree or hash, not %q", dir, opts.Access)
	}
	created := false
	if opts.Replication != nil {
		if opts.ReadOnly || (kind != "" && kind != backend.BDB) || (opts.Backend != "" && opts.Backend != backend.BDB) {
			return nil, fmt.Errorf("engine: open %s: replication needs a writable Berkeley DB directory (copy a LevelDB one with `durusbdb copy --backend bdb`): %w", dir, ErrLayout)
		}
		if kind == "" {
			// A site joining a group starts from an empty directory;
			// the layout comes from the master (openSite).
			kind, opts.Create = backend.BDB, true
		}
	}
	if kind == "" {
		if !opts.Create {
			return nil, fmt.Errorf("engine: open %s: no database in this directory (files: %v) and Create not set: %w", dir, files, kv.ErrNotDB)
		}
		if opts.ReadOnly {
			return nil, fmt.Errorf("engine: open %s: cannot create a database read-only: %w", dir, kv.ErrReadOnly)
		}
		created = true
		kind = opts.Backend
		if kind == "" {
			kind = backend.Default()
		}
		if opts.Access == "hash" && kind != backend.BDB {
			return nil, fmt.Errorf("engine: create %s: hash access is a Berkeley DB option; backend is %s", dir, kind)
		}
	} else if opts.Backend != "" && opts.Backend != kind {
		return nil, fmt.Errorf("engine: open %s: directory holds a %s database, not %s", dir, kind, opts.Backend)
	}
	kopts := kv.Options{
		Dir:       dir,
		Create:    created || opts.Replication != nil, // a joining site starts empty
		ReadOnly:  opts.ReadOnly,
		Buckets:   Buckets(opts.Access == "hash", opts.PageSize),
		CacheSize: opts.backendCache(),
		Logger:    opts.Logger,

		Replication: opts.Replication,
	}
	if opts.Replication != nil {
		kopts.Buckets = append(kopts.Buckets, changesSpec())
	}
	for i := range kopts.Buckets {
		kopts.Buckets[i].NoChecksum = opts.NoPageChecksums
	}
	store, _, err := backend.Open(kopts, kind)
	if err != nil {
		if errors.Is(err, backend.ErrUnknownLayout) {
			return nil, layoutError(dir, "unknown", nil)
		}
		return nil, fmt.Errorf("engine: open %s: %w", dir, err)
	}
	return openWith(ctx, dir, store, opts, created)
}
