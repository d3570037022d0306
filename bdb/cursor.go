//go:build bdb

package bdb

import (
	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// Cursor walks a DB inside a Txn. It belongs to the Txn's goroutine and is
// closed by Close or when the Txn ends. Movement methods return copies of
// the key and value, or an error matching ErrNotFound past either end.
//
// In a read-only (snapshot) transaction Next reads ahead in bulk
// (DB_MULTIPLE_KEY), one libdb call per batch of records instead of one
// per record; the snapshot cannot change under the batch.
type Cursor struct {
	txn *Txn
	db  *DB
	lc  *libdb.Cursor // nil once closed
	// k and v are the record under the cursor after a successful move,
	// views into kb/vb or into bulk, valid until the next move.
	k, v   []byte
	kb, vb []byte // buffers for single-record gets
	// bulk holds a DB_MULTIPLE_KEY batch walked by it. While inBulk is set
	// the libdb cursor sits on the batch's last record, not on k.
	bulk   *[]byte
	it     libdb.MultipleKey
	inBulk bool
}

// bulkSize is the DB_MULTIPLE_KEY buffer of read-ahead cursors; it must be
// a multiple of 1024 and at least a page (64 KiB at most).
const bulkSize = 128 << 10

// Cursor opens a cursor on d inside txn (required). See DB->cursor.
func (d *DB) Cursor(txn *Txn) (*Cursor, error) {
	if txn == nil {
		return nil, errf("cursor on %s: a transaction is required", d.file)
	}
	h, lt, err := d.begin(txn)
	if err != nil {
		return nil, err
	}
	defer d.end(txn)
	lc, err := h.Cursor(lt, 0)
	if err != nil {
		return nil, d.env.dataErr("cursor on "+d.file, err)
	}
	c := &Cursor{txn: txn, db: d, lc: lc}
	if txn.cursors == nil {
		txn.cursors = make(map[*Cursor]struct{})
	}
	txn.cursors[c] = struct{}{}
	return c, nil
}

// lock pins the txn; the cursor must be open.
func (c *Cursor) lock() error {
	if err := c.txn.lock(); err != nil {
		return err
	}
	if c.lc == nil {
		c.txn.mu.Unlock()
		return errf("cursor on %s: closed", c.db.file)
	}
	return nil
}

// move performs one cursor movement and keeps the record in c.k, c.v.
func (c *Cursor) move(search []byte, flags uint32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.txn.mu.Unlock()
	return c.moveLocked(search, flags)
}

func (c *Cursor) moveLocked(search []byte, flags uint32) error {
	if c.inBulk {
		switch flags {
		case libdb.Next:
			if k, v, ok := c.it.Next(); ok {
				c.k, c.v = k, v
				return nil
			}
			// Batch used up: the libdb cursor is on c.k, read the next one.
			c.inBulk = false
		case libdb.First, libdb.Last, libdb.SetRange, libdb.Set:
			c.inBulk = false
		default:
			// Relative moves start from c.k: put the libdb cursor there.
			c.inBulk = false
			if err := c.single(c.k, libdb.Set); err != nil {
				return err
			}
		}
	}
	if flags == libdb.Next && c.txn.readOnly {
		if c.bulk == nil {
			c.bulk = c.db.bulkBuf()
		}
		_, err := c.lc.GetMultipleKey(*c.bulk, libdb.Next)
		switch libdb.Code(err) {
		case 0:
			c.it = libdb.NewMultipleKey(*c.bulk)
			if k, v, ok := c.it.Next(); ok {
				c.k, c.v = k, v
				c.inBulk = true
				return nil
			}
			return errf("cursor on %s: empty bulk batch", c.db.file)
		case int(libdb.ErrBufferSmall):
			// One record larger than the batch buffer: read it alone.
		default:
			return c.db.env.dataErr("cursor on "+c.db.file, err)
		}
	}
	return c.single(search, flags)
}

// single reads one record with DBC->get into kb/vb.
func (c *Cursor) single(search []byte, flags uint32) error {
	if cap(c.kb) == 0 {
		c.kb = make([]byte, 0, 256)
	}
	if cap(c.vb) == 0 {
		c.vb = make([]byte, 0, 4096)
	}
	if len(search) > 0 && &search[0] == &c.kb[:1][0] {
		search = append([]byte(nil), search...) // Get copies search into kb
	}
	k, v, err := c.lc.Get(search, c.kb, c.vb, flags)
	if err != nil {
		return c.db.env.dataErr("cursor on "+c.db.file, err)
	}
	c.kb, c.vb = k[:0], v[:0]
	c.k, c.v = k, v
	return nil
}

func (c *Cursor) result(err error) ([]byte, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	// One allocation for both copies.
	out := make([]byte, len(c.k)+len(c.v))
	n := copy(out, c.k)
	copy(out[n:], c.v)
	return out[:n:n], out[n:], nil
}

// First moves to the first record. See DBC->get with DB_FIRST.
func (c *Cursor) First() (key, value []byte, err error) { return c.result(c.move(nil, libdb.First)) }

// Last moves to the last record. See DBC->get with DB_LAST.
func (c *Cursor) Last() (key, value []byte, err error) { return c.result(c.move(nil, libdb.Last)) }

// Next moves to the next record (the first if unpositioned). See DBC->get
// with DB_NEXT.
func (c *Cursor) Next() (key, value []byte, err error) { return c.result(c.move(nil, libdb.Next)) }

// Prev moves to the previous record (the last if unpositioned). See
// DBC->get with DB_PREV.
func (c *Cursor) Prev() (key, value []byte, err error) { return c.result(c.move(nil, libdb.Prev)) }

// Seek moves to the first key >= key (btree only). See DBC->get with
// DB_SET_RANGE.
func (c *Cursor) Seek(key []byte) (k, value []byte, err error) {
	return c.result(c.move(key, libdb.SetRange))
}

// Put stores key/value through the cursor and leaves it on that record.
// See DBC->put with DB_KEYFIRST.
func (c *Cursor) Put(key, value []byte) error {
	if c.txn.readOnly {
		return opErr("cursor put into "+c.db.file, ErrReadOnly, nil)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.txn.mu.Unlock()
	c.inBulk = false // never set in a writable txn; DBC->put repositions anyway
	if err := c.lc.Put(key, value, libdb.KeyFirst); err != nil {
		return c.db.env.dataErr("cursor put into "+c.db.file, err)
	}
	return nil
}

// Delete removes the record under the cursor; the cursor stays where it
// was, so Next moves to the following record. See DBC->del.
func (c *Cursor) Delete() error {
	if c.txn.readOnly {
		return opErr("cursor delete from "+c.db.file, ErrReadOnly, nil)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.txn.mu.Unlock()
	if err := c.lc.Del(0); err != nil {
		return c.db.env.dataErr("cursor delete from "+c.db.file, err)
	}
	return nil
}

// Close closes the cursor. Closing a closed cursor, or one whose Txn
// ended, returns nil. See DBC->close.
func (c *Cursor) Close() error {
	c.txn.mu.Lock()
	defer c.txn.mu.Unlock()
	if c.lc == nil {
		return nil
	}
	delete(c.txn.cursors, c)
	return c.closeLocked()
}

func (c *Cursor) closeLocked() error {
	if c.lc == nil {
		return nil
	}
	lc := c.lc
	c.lc = nil
	c.k, c.v, c.kb, c.vb = nil, nil, nil, nil
	c.inBulk = false
	if c.bulk != nil {
		c.db.bulkPool.Put(c.bulk)
		c.bulk = nil
	}
	if err := lc.Close(); err != nil {
		return wrap("close cursor on "+c.db.file, err)
	}
	return nil
}
