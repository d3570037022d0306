package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// commitRec is one validated record of a commit.
type commitRec struct {
	oid  uint64
	rec  []byte
	refs []uint64 // distinct refs without the record's own oid
}

// Stage validates recs (full records, oid first) and queues them to be
// applied atomically after every commit staged before, in the order of
// Stage calls (pipeline.go). Everything is checked before anything is
// queued; a refused commit changes nothing and returns an error naming the
// oid:
//
//   - ErrReadOnly on a read-only DB; ErrNotMaster on a replica of a
//     replication group; ErrImportIncomplete while an
//     incomplete import's data is present;
//   - ErrMalformed if a record fails R1–R3 (record.Parse);
//   - ErrDuplicateOID if two records have the same oid;
//   - ErrUnallocated if an oid other than 0 is at or above AllocCursor;
//   - kv.ErrNoSpace if the free-space reserve would be broken;
//   - ErrDangling if a record gains a reference to an oid that has no
//     record and is not stored by this commit or one staged before
//     (references the stored record already held are not checked again,
//     so an imported dangling reference does not block updates of its
//     referrer), or, while a full collection sweeps, a reference to an
//     object its mark did not reach.
//
// Reference counts and the garbage queue are maintained in the apply
// transaction (FORMAT.md §4). Rule 10 (ErrDangling) is decided here,
// against the stored records and the commits staged before (checkRefs);
// the references are pinned, so neither the collector nor a full
// collection deletes them before the commit is applied. Stage returns
// without waiting: the commit is applied, together with the other commits
// queued by then, in one transaction by the first Pending.Wait (or Load of
// one of its oids) that runs the queue (see pipeline.go). Until it is
// applied, Load of one of its oids waits for it. Pending.Wait returns the
// outcome: nil once applied and durable; an error wrapping ErrNotDurable
// if applied but the flush failed; any other error if the storage failed
// and nothing was applied. The apply checks the references again and
// refuses the commit with ErrDangling only when a commit staged before it,
// storing an oid it refers to, was itself refused.
//
// A server calls Stage under its commit token, so that it can pass the
// token on (and tell other clients what the commit stores) before the
// apply: the token is then held for a round trip, not for the writes.
func (db *DB) Stage(ctx context.Context, recs [][]byte) (*Pending, error) {
	if db.closed.Load() {
		return nil, ErrClosed
	}
	if db.opts.ReadOnly {
		if len(recs) > 0 && len(recs[0]) >= 8 {
			return nil, fmt.Errorf("engine: commit oid %d: %w", record.OID(recs[0]), ErrReadOnly)
		}
		return nil, fmt.Errorf("engine: commit: %w", ErrReadOnly)
	}
	if db.replica.Load() {
		return nil, fmt.Errorf("engine: commit: %w", ErrNotMaster)
	}
	if err := db.quorumShort(); err != nil {
		return nil, fmt.Errorf("engine: commit: %w: %w", ErrNoQuorum, err)
	}
	if db.importing.Load() {
		return nil, fmt.Errorf("engine: commit: %w", ErrImportIncomplete)
	}
	if err := db.FailErr(); err != nil {
		return nil, fmt.Errorf("engine: commit: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := db.parseCommit(recs)
	if err != nil {
		return nil, err
	}
	if len(p.recs) == 0 {
		close(p.applied)
		return p, nil
	}
	// A commit whose references alone outgrow one transaction is refused
	// now, before anybody is told what it stores; the apply counts the
	// exact changes (lost references too) again (applyCommit).
	refs := 0
	for _, c := range p.recs {
		refs += len(c.refs)
	}
	if err := db.fitsTxn(p.recs[0].oid, refs); err != nil {
		return nil, err
	}
	// The free-space reserve and a read-only file system are decided now
	// too, so that a commit refused for them (E) has announced nothing;
	// the apply run checks again for all its commits together (space
	// taken meanwhile by anything else).
	if err := db.space.admit(int64(p.bytes + 64*len(p.recs))); err != nil {
		return nil, fmt.Errorf("engine: commit oid %d: %w", p.recs[0].oid, err)
	}
	if rr, ok := db.store.(kv.RoomReporter); ok {
		if err := rr.RoomFor(int64(p.bytes + 64*len(p.recs))); err != nil {
			return nil, fmt.Errorf("engine: commit oid %d: %w", p.recs[0].oid, err)
		}
	}
	// Rule 10 now, before the caller tells anybody what p stores: pin the
	// references (deleters spare pinned oids) and check them with no
	// deletion in progress (delGate).
	db.delGate.RLock()
	defer db.delGate.RUnlock()
	db.pipe.pin(p)
	if err := db.checkRefs(p); err != nil {
		db.pipe.unpin(p)
		return nil, err
	}
	db.pipe.enqueue(p)
	return p, nil
}

// parseCommit checks recs for R1–R3, duplicate oids and unallocated oids
// and returns them as a Pending not yet queued.
func (db *DB) parseCommit(recs [][]byte) (*Pending, error) {
	parsed := make([]commitRec, len(recs))
	stored := make(map[uint64]struct{}, len(recs))
	cursor := db.cursor.Load()
	size := 0
	for i, rec := range recs {
		r, err := record.Parse(rec)
		if err != nil {
			return nil, fmt.Errorf("engine: commit record %d: %w", i, err)
		}
		if _, dup := stored[r.OID]; dup {
			return nil, fmt.Errorf("engine: commit oid %d: %w", r.OID, ErrDuplicateOID)
		}
		stored[r.OID] = struct{}{}
		if r.OID != record.RootOID && r.OID >= cursor {
			return nil, fmt.Errorf("engine: commit oid %d (allocation cursor %d): %w", r.OID, cursor, ErrUnallocated)
		}
		parsed[i] = commitRec{oid: r.OID, rec: rec, refs: r.RefSet()}
		size += len(rec)
	}
	return &Pending{db: db, sync: db.opts.Durability == kv.Sync, recs: parsed, stored: stored, bytes: size, applied: make(chan struct{})}, nil
}

// checkRefs refuses p with ErrDangling (rule 10) if one of its records
// gains a reference to an oid that has no record and is stored neither by
// p nor by a commit staged before it (a reference the stored or staged
// record already held is not checked again, as in applyCommit), or, while
// a full collection sweeps, refers to an oid its mark did not reach. While
// a full collection runs it marks what p stores and refers to, so that
// the sweep keeps them until p is applied. The caller holds delGate shared
// and has pinned p's references.
//
// Only gained references are looked up, so an update of a record with
// many references costs one read of its current version (usually in the
// record cache: the client loaded it) and a lookup per new reference.
func (db *DB) checkRefs(p *Pending) error {
	if err := db.stageFull(p); err != nil {
		return err
	}
	// Under pipe.mu: drop references to oids stored by p or by a commit
	// staged before it, and take the current references of records whose
	// last version is staged.
	type check struct {
		i      int      // index in p.recs
		refs   []uint64 // references still to check
		old    []uint64 // current references, if known
		staged bool     // old is the staged version's
	}
	var todo []check
	db.pipe.mu.Lock()
	for i, c := range p.recs {
		var refs []uint64
		for _, ref := range c.refs {
			if _, ok := p.stored[ref]; ok {
				continue
			}
			if db.pipe.inflight[ref] != nil {
				continue
			}
			refs = append(refs, ref)
		}
		if len(refs) == 0 {
			continue
		}
		ck := check{i: i, refs: refs}
		if q := db.pipe.inflight[c.oid]; q != nil {
			for _, qc := range q.recs {
				if qc.oid == c.oid {
					ck.old, ck.staged = qc.refs, true
					break
				}
			}
		}
		todo = append(todo, ck)
	}
	db.pipe.mu.Unlock()
	exists := make(map[uint64]bool)
	for _, ck := range todo {
		c := p.recs[ck.i]
		if !ck.staged {
			var err error
			if ck.old, err = db.storedRefs(c.oid); err != nil {
				return fmt.Errorf("engine: commit oid %d: read old record: %w", c.oid, err)
			}
		}
		for _, ref := range ck.refs {
			if _, held := slices.BinarySearch(ck.old, ref); held {
				continue
			}
			ok, known := exists[ref]
			if !known {
				var err error
				if ok, err = db.hasStored(ref); err != nil {
					return fmt.Errorf("engine: commit oid %d: look up reference %d: %w", c.oid, ref, err)
				}
				exists[ref] = ok
				if ok {
					if p.present == nil {
						p.present = make(map[uint64]struct{})
					}
					p.present[ref] = struct{}{}
				}
			}
			if !ok {
				return fmt.Errorf("engine: commit oid %d: reference to oid %d: %w", c.oid, ref, ErrDangling)
			}
		}
	}
	return nil
}

// hasStored reports whether oid has a committed record.
func (db *DB) hasStored(oid uint64) (bool, error) {
	if _, _, hit := db.cache.get(oid); hit {
		return true, nil
	}
	_, err := db.readStored(oid)
	if errors.Is(err, kv.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// readStored reads the committed record of oid (kv.ErrNotFound if none).
func (db *DB) readStored(oid uint64) ([]byte, error) {
	if g, ok := db.store.(kv.Getter); ok {
		return g.Get(BucketObjects, record.OIDBytes(oid))
	}
	var rec []byte
	err := kv.View(db.ctx, db.store, func(tx kv.Txn) error {
		v, err := tx.Get(BucketObjects, record.OIDBytes(oid))
		rec = v
		return err
	})
	return rec, err
}

// storedRefs returns the references (sorted) of the committed record of
// oid; none if it has no record or a malformed one.
func (db *DB) storedRefs(oid uint64) ([]uint64, error) {
	rec, _, hit := db.cache.get(oid)
	if !hit {
		var err error
		rec, err = db.readStored(oid)
		if errors.Is(err, kv.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	r, perr := record.ParseFor(oid, rec)
	if perr != nil {
		return nil, nil
	}
	return r.RefSet(), nil
}

// applyCommit writes one commit inside tx, the transaction of an apply run
// (pipeline.go). It returns how many of its records are new. A refusal
// (ErrDangling) is decided before the commit writes anything, so the run
// can go on with the next commit. stored holds the oids of recs, present
// the references Stage found stored and pinned (Pending.present).
func (db *DB) applyCommit(tx kv.Txn, recs []commitRec, stored, present map[uint64]struct{}) (uint64, error) {
	deltas := make(map[uint64]int)
	k := make(oidKey, 0, 8)
	added, err := db.refDeltas(tx, k, recs, stored, present, deltas)
	if err != nil {
		return 0, err
	}
	if err := db.fitsTxn(recs[0].oid, len(deltas)); err != nil {
		return 0, err // refused before it wrote anything, as ErrDangling
	}
	for _, c := range recs {
		if err := tx.Put(BucketObjects, k.of(c.oid), c.rec); err != nil {
			return 0, fmt.Errorf("engine: commit oid %d: %w", c.oid, err)
		}
	}
	if err := db.applyDeltas(tx, k, recs, stored, deltas); err != nil {
		return 0, err
	}
	return added, nil
}

// fitsTxn refuses (ErrTooLarge) a commit, named by its first oid, that
// changes more reference counts than one transaction of the store can
// hold (kv.TxnBounded), saying which cache size would take it.
func (db *DB) fitsTxn(oid uint64, changes int) error {
	b, ok := db.store.(kv.TxnBounded)
	if !ok {
		return nil
	}
	limit := b.MaxTxnChanges()
	if limit <= 0 || changes <= limit {
		return nil
	}
	size := db.opts.CacheSize
	if size <= 0 {
		size = kv.DefaultCacheSize
	}
	need := (size/int64(limit)*int64(changes) + 1<<20 - 1) >> 20 // the limit grows with the cache
	return fmt.Errorf("engine: commit oid %d: changes %d reference counts, more than the %d one transaction of this cache holds: commit it in smaller parts, or serve with --cache-size %dMiB or more: %w",
		oid, changes, limit, need, ErrTooLarge)
}

// oidKey is the key buffer of one applyCommit, reused for every oid it
// reads or writes: a key handed to kv.Txn escapes, so record.OIDBytes
// allocated once per get, put and delete (the stores copy keys and keep
// none). A nil oidKey allocates a key per call, as OIDBytes does.
type oidKey []byte

// of returns the key of oid in k's buffer, valid until the next call.
func (k oidKey) of(oid uint64) []byte { return record.AppendOID(k[:0], oid) }

// refDeltas checks the references of recs (rule 10 again, and a running
// full collection's sweep), adds to deltas the reference-count change of
// every oid they gain or lose, summed over the commit, and returns how
// many of recs are new. It writes nothing. (The caller makes deltas, so
// that the map can stay on its stack.)
func (db *DB) refDeltas(tx kv.Txn, k oidKey, recs []commitRec, stored, present map[uint64]struct{}, deltas map[uint64]int) (uint64, error) {
	exists := make(map[uint64]bool) // cache of objects lookups for refs
	var added uint64
	sweeping := db.full.isSweeping()
	for _, c := range recs {
		if sweeping {
			// Once a full collection deletes, an object it did not mark
			// may have lost part of what it references: a commit must
			// not reference it any more (the client gets a conflict and
			// the oid is invalidated when it is removed).
			for _, ref := range c.refs {
				if _, ok := stored[ref]; !ok && !db.full.isMarked(ref) {
					return 0, fmt.Errorf("engine: commit oid %d: reference to oid %d, which the running full collection removes: %w", c.oid, ref, ErrDangling)
				}
			}
		}
		oldRefs, isNew, err := db.oldRefs(tx, k, c.oid)
		if err != nil {
			return 0, err
		}
		if isNew {
			added++
		}
		if err := mergeRefs(tx, k, c, oldRefs, stored, present, exists, deltas); err != nil {
			return 0, err
		}
	}
	return added, nil
}

// oldRefs returns the references (sorted) of the record of oid stored in
// tx, and whether it has none (the commit adds it). A malformed stored
// record is logged and its references are ignored.
func (db *DB) oldRefs(tx kv.Txn, k oidKey, oid uint64) ([]uint64, bool, error) {
	old, err := tx.Get(BucketObjects, k.of(oid))
	switch {
	case err == nil:
		r, perr := record.ParseFor(oid, old)
		if perr != nil {
			db.log.Warn("engine: stored record is malformed; its references are ignored", "oid", oid, "err", perr)
			return nil, false, nil
		}
		return r.RefSet(), false, nil
	case errors.Is(err, kv.ErrNotFound):
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("engine: commit oid %d: read old record: %w", oid, err)
}

// mergeRefs adds to deltas +1 for every reference c gains over oldRefs
// and −1 for every one it loses (both lists are sorted and distinct). A
// gained reference must name an oid stored in tx or in the commit
// (stored); one Stage found stored and pinned (present) is not looked up
// again; exists caches the lookups.
func mergeRefs(tx kv.Txn, k oidKey, c commitRec, oldRefs []uint64, stored, present map[uint64]struct{}, exists map[uint64]bool, deltas map[uint64]int) error {
	i, j := 0, 0
	for i < len(c.refs) || j < len(oldRefs) {
		switch {
		case j >= len(oldRefs) || (i < len(c.refs) && c.refs[i] < oldRefs[j]):
			ref := c.refs[i]
			_, pinned := present[ref]
			if _, ok := stored[ref]; !ok && !pinned {
				ok, known := exists[ref]
				if !known {
					_, gerr := tx.Get(BucketObjects, k.of(ref))
					if gerr != nil && !errors.Is(gerr, kv.ErrNotFound) {
						return fmt.Errorf("engine: commit oid %d: look up reference %d: %w", c.oid, ref, gerr)
					}
					ok = gerr == nil
					exists[ref] = ok
				}
				if !ok {
					return fmt.Errorf("engine: commit oid %d: reference to oid %d: %w", c.oid, ref, ErrDangling)
				}
			}
			deltas[ref]++
			i++
		case i >= len(c.refs) || oldRefs[j] < c.refs[i]:
			deltas[oldRefs[j]]--
			j++
		default:
			i++
			j++
		}
	}
	return nil
}

// applyDeltas writes the reference-count changes of a commit and the
// garbage queue changes they and its records cause (FORMAT.md §4): an oid
// decremented to zero that has a record, or a record stored with no
// referrer, becomes a candidate now (its grace restarts); an oid whose
// count rises is no longer one.
func (db *DB) applyDeltas(tx kv.Txn, k oidKey, recs []commitRec, stored map[uint64]struct{}, deltas map[uint64]int) error {
	now := int8Bytes(uint64(time.Now().UnixMilli()))
	for oid, d := range deltas {
		if d == 0 {
			continue
		}
		n, err := db.addCountKey(tx, k, oid, d)
		if err != nil {
			return err
		}
		key := k.of(oid)
		if n > 0 {
			if d > 0 {
				if err := tx.Delete(BucketGarbage, key); err != nil {
					return err
				}
			}
			continue
		}
		if _, ok := stored[oid]; ok {
			continue // handled below
		}
		if oid == record.RootOID {
			continue
		}
		// Decremented to zero: queue it if it has a record.
		if _, err := tx.Get(BucketObjects, key); err == nil {
			if err := tx.Put(BucketGarbage, key, now); err != nil {
				return err
			}
		} else if !errors.Is(err, kv.ErrNotFound) {
			return err
		}
	}
	for _, c := range recs {
		if c.oid == record.RootOID {
			continue
		}
		n, err := db.getCountKey(tx, k, c.oid)
		if err != nil {
			return err
		}
		if n == 0 {
			// Stored with no referrer: a candidate from now (grace restarts).
			if err := tx.Put(BucketGarbage, k.of(c.oid), now); err != nil {
				return err
			}
		}
	}
	return nil
}

// getCount returns the reference count of oid (0 when it has no entry).
func (db *DB) getCount(tx kv.Txn, oid uint64) (uint32, error) {
	return db.getCountKey(tx, nil, oid)
}

// getCountKey is getCount building the key in k.
func (db *DB) getCountKey(tx kv.Txn, k oidKey, oid uint64) (uint32, error) {
	v, err := tx.Get(BucketRefcounts, k.of(oid))
	if errors.Is(err, kv.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("engine: refcount of oid %d: %w", oid, err)
	}
	return decodeCount(oid, v)
}

// addCount adds d to the count of oid and stores it (deleting the entry at
// zero). A count that would go negative is clamped to zero and logged: the
// stored counts were wrong (Check repairs them).
func (db *DB) addCount(tx kv.Txn, oid uint64, d int) (uint32, error) {
	return db.addCountKey(tx, nil, oid, d)
}

// addCountKey is addCount building the keys in k.
func (db *DB) addCountKey(tx kv.Txn, k oidKey, oid uint64, d int) (uint32, error) {
	n, err := db.getCountKey(tx, k, oid)
	if err != nil {
		return 0, err
	}
	v := int64(n) + int64(d)
	if v < 0 {
		db.log.Warn("engine: reference count would go negative; clamped to 0 (run check --repair)", "oid", oid, "count", n, "delta", d)
		v = 0
	}
	if v > 0xFFFFFFFF {
		return 0, fmt.Errorf("engine: reference count of oid %d overflows int4", oid)
	}
	key := k.of(oid)
	if v == 0 {
		return 0, tx.Delete(BucketRefcounts, key)
	}
	return uint32(v), tx.Put(BucketRefcounts, key, int4Bytes(uint32(v)))
}

// getSize reads meta size inside tx (the in-memory mirror when absent).
func (db *DB) getSize(tx kv.Txn) (uint64, error) {
	v, err := tx.Get(BucketMeta, []byte(MetaSize))
	if errors.Is(err, kv.ErrNotFound) {
		return db.size.Load(), nil
	}
	if err != nil {
		return 0, err
	}
	return decodeInt8(MetaSize, v)
}

// putSize writes meta size inside tx.
func putSize(tx kv.Txn, size uint64) error {
	return tx.Put(BucketMeta, []byte(MetaSize), int8Bytes(size))
}
