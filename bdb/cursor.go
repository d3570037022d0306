//go:build bdb

package bdb

import (
	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// Cursor walks a DB inside a Txn. It belongs to the Txn's goroutine and is
// closed by Close or when the Txn ends. Movement methods return copies of
// the key and value, or an error matching ErrNotFound past either end.
type Cursor struct {
	txn *Txn
	db  *DB
	lc  *libdb.Cursor // nil once closed
	// k and v hold the record under the cursor after a successful move;
	// they alias reused buffers, valid until the next move.
	k, v []byte
}

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
		return nil, wrap("cursor on "+d.file, err)
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

// move performs one DBC->get and keeps the record in c.k, c.v.
func (c *Cursor) move(search []byte, flags uint32) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.txn.mu.Unlock()
	return c.moveLocked(search, flags)
}

func (c *Cursor) moveLocked(search []byte, flags uint32) error {
	if cap(c.k) == 0 {
		c.k = make([]byte, 0, 256)
	}
	if cap(c.v) == 0 {
		c.v = make([]byte, 0, 4096)
	}
	k, v, err := c.lc.Get(search, c.k, c.v, flags)
	if err != nil {
		return wrap("cursor on "+c.db.file, err)
	}
	c.k, c.v = k, v
	return nil
}

func (c *Cursor) result(err error) ([]byte, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	return append([]byte(nil), c.k...), append([]byte(nil), c.v...), nil
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
	return wrap("cursor put into "+c.db.file, c.lc.Put(key, value, libdb.KeyFirst))
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
	return wrap("cursor delete from "+c.db.file, c.lc.Del(0))
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
	c.k, c.v = nil, nil
	return wrap("close cursor on "+c.db.file, lc.Close())
}
