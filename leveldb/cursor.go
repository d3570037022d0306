package leveldb

import (
	"bytes"
	"fmt"

	"github.com/jmhodges/levigo"
)

// cursor is a kv.Cursor: a merge of the transaction's overlay (write txns)
// with a LevelDB iterator over the snapshot, both restricted to the
// bucket's prefix. An overlay entry hides the snapshot entry with the same
// key; an overlay tombstone hides it entirely.
//
// Invariant after a successful move in direction dir: cur is the current
// (full) key; the base iterator and the overlay position writes are each at
// their first entry >= cur (forward) or last entry <= cur (backward); the
// source of the current record (src) is positioned exactly at cur.
type cursor struct {
	t      *txn
	bucket string
	prefix byte
	it     *levigo.Iterator // nil once released

	valid   bool
	fwd     bool   // direction of the last move
	cur     []byte // full key of the current record
	fromOvl bool   // the current record comes from the overlay
	curNode *node  // when fromOvl

	baseKey   []byte // full key under the base iterator, nil if off the bucket
	writes    *node  // overlay position, nil if off the bucket
	writesVer uint64 // overlay version writes was positioned at
	err       error
}

func (c *cursor) inBucket(k []byte) bool { return len(k) > 0 && k[0] == c.prefix }

// baseSync caches the base iterator's key after a move.
func (c *cursor) baseSync() {
	if c.it.Valid() {
		k := c.it.Key()
		if c.inBucket(k) {
			c.baseKey = k
			return
		}
	} else if err := c.it.GetError(); err != nil && c.err == nil {
		c.err = c.t.s.mapError(fmt.Sprintf("cursor on %s in", c.bucket), err)
	}
	c.baseKey = nil
}

func (c *cursor) baseSeekGE(k []byte) { c.it.Seek(k); c.baseSync() }

func (c *cursor) baseSeekGT(k []byte) {
	c.it.Seek(k)
	c.baseSync()
	if c.baseKey != nil && bytes.Equal(c.baseKey, k) {
		c.baseNext()
	}
}

func (c *cursor) baseSeekLT(k []byte) {
	c.it.Seek(k)
	if c.it.Valid() {
		c.it.Prev()
	} else {
		c.it.SeekToLast()
	}
	c.baseSync()
}

func (c *cursor) baseNext() {
	if c.baseKey == nil {
		return
	}
	c.it.Next()
	c.baseSync()
}

func (c *cursor) basePrev() {
	if c.baseKey == nil {
		return
	}
	c.it.Prev()
	c.baseSync()
}

// writesIn returns n if it is in the bucket, else nil.
func (c *cursor) writesIn(n *node) *node {
	if n != nil && c.inBucket(n.key) {
		return n
	}
	return nil
}

func (c *cursor) writesSeekGE(k []byte) {
	if o := c.t.writes; o != nil {
		c.writes = c.writesIn(o.seekGE(k, nil))
		c.writesVer = o.version
	}
}

func (c *cursor) writesSeekGT(k []byte) {
	if o := c.t.writes; o != nil {
		c.writes = c.writesIn(o.seekGT(k))
		c.writesVer = o.version
	}
}

func (c *cursor) writesSeekLT(k []byte) {
	if o := c.t.writes; o != nil {
		c.writes = c.writesIn(o.seekLT(k))
		c.writesVer = o.version
	}
}

// settleFwd makes the smallest visible entry current.
func (c *cursor) settleFwd() bool {
	c.fwd = true
	for {
		if c.writes != nil && (c.baseKey == nil || bytes.Compare(c.writes.key, c.baseKey) <= 0) {
			if c.writes.del {
				if c.baseKey != nil && bytes.Equal(c.writes.key, c.baseKey) {
					c.baseNext()
				}
				c.writes = c.writesIn(c.writes.next[0])
				continue
			}
			c.setCur(c.writes.key, c.writes)
			return true
		}
		if c.baseKey != nil {
			c.setCur(c.baseKey, nil)
			return true
		}
		c.valid = false
		return false
	}
}

// settleBack makes the greatest visible entry current.
func (c *cursor) settleBack() bool {
	c.fwd = false
	for {
		if c.writes != nil && (c.baseKey == nil || bytes.Compare(c.writes.key, c.baseKey) >= 0) {
			if c.writes.del {
				if c.baseKey != nil && bytes.Equal(c.writes.key, c.baseKey) {
					c.basePrev()
				}
				c.writes = c.writesIn(c.t.writes.seekLT(c.writes.key))
				continue
			}
			c.setCur(c.writes.key, c.writes)
			return true
		}
		if c.baseKey != nil {
			c.setCur(c.baseKey, nil)
			return true
		}
		c.valid = false
		return false
	}
}

func (c *cursor) setCur(k []byte, n *node) {
	c.valid, c.cur, c.fromOvl, c.curNode = true, k, n != nil, n
}

// usable reports whether the cursor's iterator is still alive (not closed,
// transaction not ended). Callers hold s.closeMu for reading.
func (c *cursor) usable() bool {
	if c.it == nil || c.t.done {
		c.valid = false
		return false
	}
	return true
}

// First moves to the first record of the bucket.
func (c *cursor) First() bool {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.usable() {
		return false
	}
	start := []byte{c.prefix}
	c.baseSeekGE(start)
	c.writesSeekGE(start)
	return c.settleFwd()
}

// Last moves to the last record of the bucket.
func (c *cursor) Last() bool {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.usable() {
		return false
	}
	if c.prefix == 0xff {
		c.it.SeekToLast()
		c.baseSync()
		if o := c.t.writes; o != nil {
			c.writes = c.writesIn(o.last())
			c.writesVer = o.version
		}
	} else {
		end := []byte{c.prefix + 1}
		c.baseSeekLT(end)
		c.writesSeekLT(end)
	}
	return c.settleBack()
}

// Seek moves to the first record with key >= key.
func (c *cursor) Seek(key []byte) bool {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.usable() {
		return false
	}
	k := fullKey(c.prefix, key)
	c.baseSeekGE(k)
	c.writesSeekGE(k)
	return c.settleFwd()
}

// Next moves to the following record; false at the end (or if the cursor
// is not positioned).
func (c *cursor) Next() bool {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.usable() || !c.valid {
		c.valid = false
		return false
	}
	cur := c.cur
	if !c.fwd {
		c.baseSeekGT(cur)
	} else if c.baseKey != nil && bytes.Equal(c.baseKey, cur) {
		c.baseNext()
	}
	if o := c.t.writes; o != nil {
		if !c.fwd || c.writesVer != o.version || c.writes == nil {
			c.writesSeekGT(cur)
		} else if bytes.Equal(c.writes.key, cur) {
			c.writes = c.writesIn(c.writes.next[0])
		}
	}
	return c.settleFwd()
}

// Prev moves to the preceding record; false at the start (or if the cursor
// is not positioned).
func (c *cursor) Prev() bool {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.usable() || !c.valid {
		c.valid = false
		return false
	}
	cur := c.cur
	if c.fwd {
		c.baseSeekLT(cur)
	} else if c.baseKey != nil && bytes.Equal(c.baseKey, cur) {
		c.basePrev()
	}
	if o := c.t.writes; o != nil {
		if c.fwd || c.writesVer != o.version || c.writes == nil {
			c.writesSeekLT(cur)
		} else if bytes.Equal(c.writes.key, cur) {
			c.writes = c.writesIn(o.seekLT(cur))
		}
	}
	return c.settleBack()
}

// Valid reports whether the cursor is at a record.
func (c *cursor) Valid() bool {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	return c.valid && c.usable()
}

// Key returns a copy of the current key, or nil.
func (c *cursor) Key() []byte {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.valid || !c.usable() {
		return nil
	}
	return bytes.Clone(c.cur[1:])
}

// Value returns a copy of the current value, or nil.
func (c *cursor) Value() []byte {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if !c.usable() || !c.valid {
		return nil
	}
	if c.fromOvl {
		return bytes.Clone(c.curNode.val)
	}
	v := c.it.Value()
	if v == nil {
		v = []byte{}
	}
	return v
}

// Err reports an error that ended the walk early (kv.ErrCorrupt for a
// damaged table, naming the file).
func (c *cursor) Err() error { return c.err }

// Close releases the iterator; later moves return false.
func (c *cursor) Close() error {
	c.t.s.closeMu.RLock()
	defer c.t.s.closeMu.RUnlock()
	if c.it == nil {
		return nil
	}
	c.release()
	if c.t.cursors != nil {
		delete(c.t.cursors, c)
	}
	return nil
}

// release frees the iterator. Callers hold s.closeMu.
func (c *cursor) release() {
	if c.it != nil {
		c.it.Close()
		c.it = nil
	}
	c.valid = false
}
