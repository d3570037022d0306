package leveldb

import (
	"encoding/binary"
	"fmt"

	"github.com/jmhodges/levigo"

	"github.com/durusbdb/durusbdb/kv"
)

// txn is a kv.Txn. Every method holds s.closeMu for reading, so Close
// (which holds it for writing) never runs concurrently with one.
type txn struct {
	s        *Store
	writable bool
	done     bool // ended by Commit, Abort or Store.Close
	byClose  bool // ended by Store.Close

	// snap and ro are the snapshot reads go through; a write txn takes
	// them at its first read (writers are serialized, so the committed
	// state cannot change between its Begin and its first read).
	snap *levigo.Snapshot
	ro   *levigo.ReadOptions

	writes  *overlay // write txns: the buffered writes
	cursors map[*cursor]struct{}
}

func (t *txn) openSnapshot() {
	t.snap = t.s.db.NewSnapshot()
	t.ro = t.s.getReadOptions()
	t.ro.SetSnapshot(t.snap)
}

// check returns the error for a call on an ended transaction, or nil.
// Callers hold s.closeMu for reading.
func (t *txn) check(op string) error {
	if !t.done {
		return nil
	}
	if t.byClose {
		return fmt.Errorf("leveldb: %s %s: %w", op, t.s.dir, kv.ErrClosed)
	}
	return fmt.Errorf("leveldb: %s: %w", op, kv.ErrTxnDone)
}

// release ends the transaction: closes its cursors, releases the snapshot
// and the writer slot. Callers hold s.closeMu (read or write).
func (t *txn) release(byClose bool) {
	if t.done {
		return
	}
	t.done, t.byClose = true, byClose
	for c := range t.cursors {
		c.release()
	}
	t.cursors = nil
	if t.ro != nil {
		t.s.putReadOptions(t.ro)
		t.ro = nil
	}
	if t.snap != nil {
		t.s.db.ReleaseSnapshot(t.snap)
		t.snap = nil
	}
	t.writes = nil
	if t.writable {
		<-t.s.writer
	}
}

// bigBatch is the overlay size above which Commit uses a one-off batch.
const bigBatch = 1 << 20

// fullKey returns prefix ‖ key in a new slice.
func fullKey(p byte, key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = p
	copy(k[1:], key)
	return k
}

// Get returns a copy of the value stored under key in bucket, seeing this
// transaction's own writes, or an error wrapping kv.ErrNotFound.
func (t *txn) Get(bucket string, key []byte) ([]byte, error) {
	t.s.closeMu.RLock()
	defer t.s.closeMu.RUnlock()
	if err := t.check("get"); err != nil {
		return nil, err
	}
	p, err := t.s.bucketPrefix(bucket)
	if err != nil {
		return nil, err
	}
	k := fullKey(p, key)
	if t.writes != nil {
		if n := t.writes.get(k); n != nil {
			if n.del {
				return nil, kv.ErrNotFound
			}
			v := make([]byte, len(n.val))
			copy(v, n.val)
			return v, nil
		}
	}
	if t.snap == nil {
		t.openSnapshot()
	}
	v, err := t.s.db.Get(t.ro, k)
	if err != nil {
		return nil, t.s.mapError(fmt.Sprintf("get %s key %x in", bucket, key), err)
	}
	if v == nil {
		return nil, kv.ErrNotFound
	}
	return v, nil
}

func (t *txn) write(op, bucket string, key, value []byte, del bool) error {
	t.s.closeMu.RLock()
	defer t.s.closeMu.RUnlock()
	if err := t.check(op); err != nil {
		return err
	}
	p, err := t.s.bucketPrefix(bucket)
	if err != nil {
		return err
	}
	if !t.writable {
		return fmt.Errorf("leveldb: %s %s key %x in a read-only transaction: %w", op, bucket, key, kv.ErrReadOnly)
	}
	t.writes.set(fullKey(p, key), value, del)
	return nil
}

// Put buffers value under key in bucket; the slices may be reused at once.
func (t *txn) Put(bucket string, key, value []byte) error {
	return t.write("put", bucket, key, value, false)
}

// Delete buffers the removal of key from bucket; a missing key is fine.
func (t *txn) Delete(bucket string, key []byte) error {
	return t.write("delete", bucket, key, nil, true)
}

// Cursor opens a cursor over bucket that merges this transaction's writes
// with its snapshot.
func (t *txn) Cursor(bucket string) (kv.Cursor, error) {
	t.s.closeMu.RLock()
	defer t.s.closeMu.RUnlock()
	if err := t.check("cursor"); err != nil {
		return nil, err
	}
	p, err := t.s.bucketPrefix(bucket)
	if err != nil {
		return nil, err
	}
	if t.snap == nil {
		t.openSnapshot()
	}
	c := &cursor{t: t, bucket: bucket, prefix: p, it: t.s.db.NewIterator(t.ro)}
	if t.cursors == nil {
		t.cursors = map[*cursor]struct{}{}
	}
	t.cursors[c] = struct{}{}
	return c, nil
}

// Commit writes the buffered changes as one WriteBatch (atomic) without
// sync and queues their redo record; with kv.Sync it then flushes (see the
// package documentation, "Durability"). A read-only transaction just ends.
// On error nothing was applied.
func (t *txn) Commit(d kv.Durability) error {
	t.s.closeMu.RLock()
	defer t.s.closeMu.RUnlock()
	if err := t.check("commit"); err != nil {
		return err
	}
	defer t.s.forget(t)
	if !t.writable || t.writes.n == 0 {
		t.release(false)
		return nil
	}
	// This txn holds the writer slot, so it owns commitWB. A big batch
	// gets its own, so that commitWB does not keep its memory.
	wb := t.s.commitWB
	if t.writes.size > bigBatch {
		wb = levigo.NewWriteBatch()
		defer wb.Close()
	}
	// The batch carries the commit's marker, and the same operations
	// are queued as its redo record once LevelDB has them (redo.go).
	seq := t.s.nextSeq
	encode := t.s.walWants(t.writes.size)
	mark := encode || t.s.walSkip()
	payload, keys := t.s.recBuf[:0], t.s.keysBuf[:0]
	for n := t.writes.first(); n != nil; n = n.next[0] {
		if n.del {
			wb.Delete(n.key)
		} else {
			wb.Put(n.key, n.val)
		}
		if encode {
			payload = appendWALOp(payload, n.del, n.key, n.val)
		}
		if mark {
			keys = binary.AppendUvarint(keys, uint64(len(n.key)))
			keys = append(keys, n.key...)
		}
	}
	if mark {
		wb.Put(markerKey(seq), keys)
	}
	err := t.s.db.Write(t.s.wNoSync, wb)
	wb.Clear()
	if err == nil {
		t.s.nextSeq++
		if mark {
			t.s.noteMarker(seq)
		}
		if encode {
			t.s.walAdd(seq, payload)
		} else {
			t.s.walSkipped(seq)
		}
		t.s.written.Add(1)
	}
	if cap(payload) <= bigBatch {
		t.s.recBuf = payload
	}
	if cap(keys) <= bigBatch {
		t.s.keysBuf = keys
	}
	t.release(false)
	if err != nil {
		return t.s.mapError("commit to", err)
	}
	if d == kv.Sync {
		if err := t.s.flush(); err != nil {
			return fmt.Errorf("leveldb: commit to %s: written but not made durable: %w", t.s.dir, err)
		}
	}
	return nil
}

// Abort discards the transaction; after the end it returns nil.
func (t *txn) Abort() error {
	t.s.closeMu.RLock()
	defer t.s.closeMu.RUnlock()
	if t.done {
		return nil
	}
	t.release(false)
	t.s.forget(t)
	return nil
}
