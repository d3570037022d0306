package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// BucketChanges is the replicated change table of a replication site
// (FORMAT.md §3): key the int8 sequence number of an apply run, value the
// master's int8 UnixNano time of the run followed by the int8 oids the run
// stored. The master writes it in the run's own
// transaction; replicas read it to invalidate their caches and their
// clients' in commit order. Only sites (Options.Replication) have it.
const BucketChanges = "changes"

// keepChanges is how many runs the change table keeps: the master deletes
// entry seq-keepChanges when it writes seq. A replica that falls further
// behind is re-initialized by libdb (its handles die: it restarts).
const keepChanges = 100000

// changesPoll is how often a replica reads the change table.
const changesPoll = 2 * time.Millisecond

// changesSpec is the bucket spec of the change table.
func changesSpec() kv.BucketSpec {
	return kv.BucketSpec{Name: BucketChanges, File: "changes.db", Prefix: 'c'}
}

// changeState is a site's position in the change table.
type changeState struct {
	next     uint64        // master: seq of the next run's entry; written with writeMu and recentMu held
	follow   uint64        // replica: next seq to report; guarded by runMu
	start    atomic.Uint64 // seq of a promoted master's first entry: changesLoop reports up to it, then ends
	started  atomic.Uint64 // replica: 1 + the entry whose invalidation started last
	begun    atomic.Uint64 // replica: reads of the table begun (FollowerMark)
	passes   atomic.Uint64 // replica: reads of the table ended
	reported atomic.Uint64 // replica: follow, readable by WaitReplicated
	lag      atomic.Int64  // replica: nanoseconds from the master's commit of the last entry followed to its report here
	fol      *follower     // replica: the running changesLoop; owned by the role goroutine (openSite before it starts)
	ending   *follower     // the changesLoop stopFollowing ended, perhaps still in its last read; owned like fol
	kick     chan struct{} // replica: read the table now (WaitReplicated); buffered 1, made once by openSite
	// runMu is held through each read of the table, by changesLoop or by
	// a waiter that reads it itself (readInline): reads never overlap,
	// so they begin and end in order and report entries in order.
	runMu    sync.Mutex
	gcSeen   []byte                      // replica: meta gc at the last dropRemoved; guarded by runMu
	active   atomic.Pointer[follower]    // replica: the follower whose reads may run inline; nil once told to stop
	passMu   sync.Mutex                  // guards passDone
	passDone chan struct{}               // replica: closed when the read of the table in progress (or the next) ends; see passWait
	recent   [recentChanges]recentChange // master: the last entries written, for ChangedSince; guarded by recentMu
	// recentMu guards next and recent for ChangedSince, which runs under
	// the server's commit token and must not wait for an apply run
	// (writeMu is held through the quorum's acknowledgement).
	recentMu sync.Mutex
}

// followFrom starts a replica's changesLoop after the last entry present.
func (db *DB) followFrom(ctx context.Context) error {
	if e := db.changes.ending; e != nil {
		<-e.done // the loop a promotion stopped, before its state is reused
		db.changes.ending = nil
	}
	last, err := db.lastChange(ctx)
	if err != nil {
		return err
	}
	db.changes.runMu.Lock() // an inline read of an earlier follower may still be ending
	db.changes.follow = last + 1
	db.changes.runMu.Unlock()
	db.changes.reported.Store(last + 1)
	db.changes.started.Store(last + 1)
	f := &follower{stop: make(chan struct{}), done: make(chan struct{})}
	db.changes.fol = f
	db.changes.active.Store(f)
	db.wg.Add(1)
	go db.changesLoop(f)
	return nil
}

// stopFollowing tells a replica's changesLoop that the site was promoted
// with its first own entry at seq start: the loop reports what comes
// before and ends. It does not wait: a read the loop has in flight may
// sit in libdb's role-change lockout until the lockout ends (cgo/libdb's
// yield function ends libdb's fixed lockout sleeps at the next
// replication event; before it, seconds).
func (db *DB) stopFollowing(start uint64) {
	f := db.changes.fol
	if f == nil {
		return
	}
	db.changes.active.Store(nil)
	db.changes.start.Store(start)
	close(f.stop)
	db.changes.fol = nil
	db.changes.ending = f
}

// haltFollowing ends a replica's changesLoop without reporting anything
// more, and waits until it has ended (a reset: the handles it reads are
// dead, and every client that needed its reports is being closed).
func (db *DB) haltFollowing() {
	f := db.changes.fol
	if f == nil {
		return
	}
	db.changes.active.Store(nil) // an inline read stops at its next entry
	db.changes.runMu.Lock()      // once the read in flight (the follower's or an inline one) has ended,
	f.quiet.Store(true)          // no read of the follower begins
	db.changes.runMu.Unlock()
	close(f.stop)
	db.changes.fol = nil
	<-f.done
}

// lastChange returns the last sequence number of the change table, 0 when
// empty.
func (db *DB) lastChange(ctx context.Context) (uint64, error) {
	var last uint64
	err := kv.View(ctx, db.store, func(tx kv.Txn) error {
		c, err := tx.Cursor(BucketChanges)
		if err != nil {
			return err
		}
		defer c.Close()
		if c.Last() && len(c.Key()) == 8 {
			last = binary.BigEndian.Uint64(c.Key())
		}
		return c.Err()
	})
	if err != nil {
		return 0, fmt.Errorf("engine: %s: read the change table: %w", db.dir, err)
	}
	return last, nil
}

// logChanges writes the change entry of run q in tx (a master of a
// replication group only) and trims the table. writeMu is held.
func (db *DB) logChanges(tx kv.Txn, q []*Pending) error {
	if db.opts.Replication == nil {
		return nil
	}
	v := int8Bytes(uint64(time.Now().UnixNano())) // the master's clock: replicas' lag
	for _, p := range q {
		if p.err != nil {
			continue // refused (ErrDangling): it wrote nothing
		}
		for _, c := range p.recs {
			v = binary.BigEndian.AppendUint64(v, c.oid)
		}
	}
	seq := db.changes.next
	if err := tx.Put(BucketChanges, int8Bytes(seq), v); err != nil {
		return fmt.Errorf("engine: change entry %d: %w", seq, err)
	}
	db.changes.recentMu.Lock()
	db.changes.recent[seq%recentChanges] = recentChange{seq: seq, oids: v[8:]}
	db.changes.recentMu.Unlock()
	if seq > keepChanges {
		if err := tx.Delete(BucketChanges, int8Bytes(seq-keepChanges)); err != nil {
			return fmt.Errorf("engine: trim change entry %d: %w", seq-keepChanges, err)
		}
	}
	return nil
}

// changesLoop is a replica's follower of the change table: every
// changesPoll it reads the entries after its position and, in order,
// drops their oids from the record cache and reports them
// (Options.OnReplicated: the server invalidates them for its clients). It
// ends when the DB closes, the site becomes master (stopFollowing) or is
// reset (haltFollowing). Dead handles (a rollback) ask the role goroutine
// for a reset and wait for it to halt the loop.
func (db *DB) changesLoop(f *follower) {
	defer db.wg.Done()
	defer close(f.done)
	t := time.NewTicker(changesPoll)
	defer t.Stop()
	for {
		limit := uint64(math.MaxUint64)
		select {
		case <-db.ctx.Done():
			return
		case <-f.stop:
			limit = db.changes.start.Load()
		case <-t.C:
		case <-db.changes.kick:
		}
		db.changes.runMu.Lock()
		if f.quiet.Load() {
			db.changes.runMu.Unlock()
			return
		}
		err := db.readChanges(limit, nil)
		if err == nil {
			err = db.dropRemoved()
		}
		db.changes.runMu.Unlock()
		if limit != math.MaxUint64 {
			if err != nil {
				db.log.Warn("engine: last read of the replicated change table before promotion", "dir", db.dir, "err", err)
			}
			return
		}
		if err != nil {
			if db.ctx.Err() != nil {
				return
			}
			if errors.Is(err, kv.ErrHandleDead) {
				db.requestReset(fmt.Errorf("replica cannot compute its clients' invalidations: %w", err))
				select {
				case <-db.ctx.Done():
				case <-f.stop:
				}
				return
			}
			db.log.Warn("engine: read the replicated change table", "dir", db.dir, "err", err)
		}
	}
}

// dropRemoved empties a replica's record cache when the replicated meta
// gc says that the master's collector or a full collection removed
// objects since the last look: removals are not in the change table, and
// the cache would go on serving records the master removed (a QA round:
// a removed object still loaded on the replica, K on the others). The
// collector and each sweep batch of a full collection write meta gc in
// the transaction that deletes. runMu is held.
func (db *DB) dropRemoved() error {
	g, ok := db.store.(kv.Getter)
	if !ok {
		return nil
	}
	v, err := g.Get(BucketMeta, []byte(MetaGC))
	if errors.Is(err, kv.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("engine: read meta gc: %w", err)
	}
	if bytes.Equal(v, db.changes.gcSeen) {
		return nil
	}
	first := db.changes.gcSeen == nil
	db.changes.gcSeen = bytes.Clone(v)
	if !first {
		db.cache.purge()
	}
	return nil
}

// readChanges is one read of the change table (followChanges), counted
// for FollowerMark and SyncFollowerFrom, and the wake-up of passWait's
// waiters at its end; runMu is held.
func (db *DB) readChanges(limit uint64, inline *follower) error {
	db.changes.begun.Add(1)
	err := db.followChanges(limit, inline)
	db.changes.passes.Add(1)
	db.changes.endPass()
	return err
}

// followChanges reports the change entries from db.changes.next on, in
// order; runMu is held. An inline read (readInline, inline set) stops at
// once when its follower is told to stop. It reads the entries one by one
// outside any transaction (kv.Getter):
// a txn_begin that meets a role change's lockout waits in libdb
// (__op_rep_enter; 5 s per check in libdb as shipped, until the next
// replication event with cgo/libdb's yield function), which a poller
// every changesPoll nearly always meets at a failover, and an open
// transaction would hold the lockout itself up.
func (db *DB) followChanges(limit uint64, inline *follower) error {
	g, ok := db.store.(kv.Getter)
	if !ok {
		return fmt.Errorf("engine: %s: the %s store cannot read the change table: %w", db.dir, db.backend, ErrLayout)
	}
	for db.changes.follow < limit {
		if inline != nil && db.changes.active.Load() != inline {
			return nil // told to stop meanwhile: changesLoop reads what is left
		}
		v, err := g.Get(BucketChanges, int8Bytes(db.changes.follow))
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(v) < 8 || len(v)%8 != 0 {
			return fmt.Errorf("engine: change entry %d of %d bytes: %w", db.changes.follow, len(v), kv.ErrCorrupt)
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		db.changes.lag.Store(int64(max(time.Since(at), 0)))
		oids := make([]uint64, 0, len(v)/8-1)
		for i := 8; i < len(v); i += 8 {
			oids = append(oids, binary.BigEndian.Uint64(v[i:]))
		}
		db.cache.invalidate(oids...)
		db.changes.started.Store(db.changes.follow + 1)
		if f := db.opts.OnReplicated; f != nil && len(oids) > 0 {
			f(oids)
		}
		db.changes.follow++
		db.changes.reported.Store(db.changes.follow)
	}
	return nil
}
