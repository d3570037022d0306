package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// BucketChanges is the replicated change table of a replication site
// (FORMAT.md §6): key the int8 sequence number of an apply run, value the
// int8 oids the run stored. The master writes it in the run's own
// transaction; replicas read it to invalidate their caches and their
// clients' in commit order. Only sites (Options.Replication) have it.
const BucketChanges = "changes"

// keepChanges is how many runs the change table keeps: the master deletes
// entry seq-keepChanges when it writes seq. A replica that falls further
// behind sees a gap and restarts fresh.
const keepChanges = 100000

// changesPoll is how often a replica reads the change table.
const changesPoll = 2 * time.Millisecond

// ErrChangeGap: a replica cannot compute its clients' invalidations (the
// change table was trimmed past its position, or went backwards in a
// rollback); it fails so that its owner restarts it with empty caches and
// no stale client.
var ErrChangeGap = errors.New("engine: replicated change table has a gap")

// changesSpec is the bucket spec of the change table.
func changesSpec() kv.BucketSpec {
	return kv.BucketSpec{Name: BucketChanges, File: "changes.db", Prefix: 'c'}
}

// changeState is a site's position in the change table.
type changeState struct {
	next uint64        // master: seq of the next run (owned by writeMu); replica: next seq to read (owned by changesLoop)
	stop chan struct{} // replica: closed to end changesLoop (promotion)
	done chan struct{} // replica: closed when changesLoop returned
}

// followFrom starts a replica's changesLoop after the last entry present.
func (db *DB) followFrom(ctx context.Context) error {
	last, err := db.lastChange(ctx)
	if err != nil {
		return err
	}
	db.changes.next = last + 1
	db.changes.stop, db.changes.done = make(chan struct{}), make(chan struct{})
	db.wg.Add(1)
	go db.changesLoop(db.changes.stop, db.changes.done)
	return nil
}

// stopFollowing ends a replica's changesLoop after it has reported every
// entry present (promotion: the master's own commits are invalidated by
// the server from now on).
func (db *DB) stopFollowing() {
	if db.changes.stop == nil {
		return
	}
	close(db.changes.stop)
	<-db.changes.done
	db.changes.stop = nil
}

// openChanges opens a cursor on the change table.
func openChanges(tx kv.Txn) (kv.Cursor, error) { return tx.Cursor(BucketChanges) }

// lastKey returns the last sequence number under c, 0 when empty.
func lastKey(c kv.Cursor) uint64 {
	if c.Last() && len(c.Key()) == 8 {
		return binary.BigEndian.Uint64(c.Key())
	}
	return 0
}

// lastChange returns the last sequence number of the change table, 0 when
// empty.
func (db *DB) lastChange(ctx context.Context) (uint64, error) {
	var last uint64
	err := kv.View(ctx, db.store, func(tx kv.Txn) error {
		c, err := openChanges(tx)
		if err != nil {
			return err
		}
		defer c.Close()
		last = lastKey(c)
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
	var v []byte
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
// ends when the DB closes or the site becomes master.
func (db *DB) changesLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer db.wg.Done()
	defer close(done)
	t := time.NewTicker(changesPoll)
	defer t.Stop()
	for {
		last := false
		select {
		case <-db.ctx.Done():
			return
		case <-stop:
			last = true
		case <-t.C:
		}
		err := db.followChanges()
		if last {
			if err != nil {
				db.log.Warn("engine: last read of the replicated change table before promotion", "dir", db.dir, "err", err)
			}
			return
		}
		if err != nil {
			if db.ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrChangeGap) || errors.Is(err, kv.ErrHandleDead) {
				db.fail(fmt.Errorf("replica cannot compute its clients' invalidations; restart it: %w", err))
				return
			}
			db.log.Warn("engine: read the replicated change table", "dir", db.dir, "err", err)
		}
	}
}

// followChanges applies the change entries after db.changes.next.
func (db *DB) followChanges() error {
	type entry struct {
		seq  uint64
		oids []uint64
	}
	var got []entry
	var last uint64
	err := kv.View(db.ctx, db.store, func(tx kv.Txn) error {
		got = got[:0]
		c, err := openChanges(tx)
		if err != nil {
			return err
		}
		defer c.Close()
		last = lastKey(c)
		for ok := c.Seek(int8Bytes(db.changes.next)); ok; ok = c.Next() {
			k, v := c.Key(), c.Value()
			if len(k) != 8 || len(v)%8 != 0 {
				return fmt.Errorf("change entry %x of %d bytes: %w", k, len(v), kv.ErrCorrupt)
			}
			e := entry{seq: binary.BigEndian.Uint64(k)}
			for i := 0; i < len(v); i += 8 {
				e.oids = append(e.oids, binary.BigEndian.Uint64(v[i:]))
			}
			got = append(got, e)
		}
		return c.Err()
	})
	if err != nil {
		return err
	}
	if last+1 < db.changes.next {
		// The table went backwards: a rollback replaced entries this
		// site had reported.
		return fmt.Errorf("%w: last entry %d, next expected %d", ErrChangeGap, last, db.changes.next)
	}
	for _, e := range got {
		if e.seq != db.changes.next {
			return fmt.Errorf("%w: expected entry %d, found %d", ErrChangeGap, db.changes.next, e.seq)
		}
		db.cache.invalidate(e.oids...)
		if f := db.opts.OnReplicated; f != nil && len(e.oids) > 0 {
			f(e.oids)
		}
		db.changes.next++
	}
	return nil
}
