//go:build bdb

package libdb

/*
#include "libdbgo.h"
*/
import "C"

import "encoding/binary"

// Cursor is a DBC handle, used by one goroutine at a time and closed
// before its transaction ends.
type Cursor struct {
	p *C.DBC
}

// Cursor opens a cursor on d inside txn (nil: no transaction). See
// DB->cursor.
func (d *DB) Cursor(txn *Txn, flags uint32) (*Cursor, error) {
	if d.p == nil {
		return nil, errInvalid("DB->cursor")
	}
	var p *C.DBC
	if rc := C.dbgo_db_cursor(d.p, txnPtr(txn), &p, C.u_int32_t(flags)); rc != 0 {
		return nil, newError("DB->cursor", rc)
	}
	return &Cursor{p: p}, nil
}

// Close closes the cursor; the handle is dead afterwards. See DBC->close.
func (c *Cursor) Close() error {
	if c.p == nil {
		return errInvalid("DBC->close")
	}
	p := c.p
	c.p = nil
	if rc := C.dbgo_dbc_close(p); rc != 0 {
		return newError("DBC->close", rc)
	}
	return nil
}

// Get moves the cursor (First, Last, Next, Prev, Current, Set, SetRange)
// and returns the key and value it lands on, read into kbuf and vbuf
// (their capacity is reused; they grow on DB_BUFFER_SMALL, when libdb
// leaves the cursor where it was and the call is repeated). search is the
// input key of Set and SetRange. The results may alias kbuf and vbuf. At
// the end it returns an *Error with ErrNotFound. See DBC->get.
func (c *Cursor) Get(search, kbuf, vbuf []byte, flags uint32) (key, value []byte, err error) {
	if c.p == nil {
		return nil, nil, errInvalid("DBC->get")
	}
	if cap(kbuf) < len(search) {
		kbuf = make([]byte, len(search), len(search)+16)
	}
	for {
		k := kbuf[:cap(kbuf)]
		v := vbuf[:cap(vbuf)]
		kn := copy(k, search)
		var kneed, vneed C.u_int32_t
		rc := C.dbgo_dbc_get(c.p, cptr(k), C.size_t(kn), C.size_t(len(k)), &kneed,
			cptr(v), C.size_t(len(v)), &vneed, C.u_int32_t(flags))
		switch rc {
		case 0:
			return k[:kneed], v[:vneed], nil
		case C.DB_BUFFER_SMALL:
			if int(kneed) > len(k) {
				kbuf = make([]byte, int(kneed))
			}
			if int(vneed) > len(v) {
				vbuf = make([]byte, int(vneed))
			}
		default:
			return nil, nil, newError("DBC->get", rc)
		}
	}
}

// GetMultipleKey moves the cursor like Get (usually Next) and fills buf
// with as many key/data pairs as fit (DB_MULTIPLE_KEY); the cursor ends on
// the last pair returned. buf must be a multiple of 1024 bytes and at
// least a page. If even the first pair does not fit it returns an *Error
// with ErrBufferSmall and need, the size required. Read the pairs with
// MultipleKey. See DBC->get with DB_MULTIPLE_KEY.
func (c *Cursor) GetMultipleKey(buf []byte, flags uint32) (need int, err error) {
	if c.p == nil {
		return 0, errInvalid("DBC->get")
	}
	var n C.u_int32_t
	rc := C.dbgo_dbc_get_multiple_key(c.p, cptr(buf), C.size_t(len(buf)), &n, C.u_int32_t(flags))
	if rc != 0 {
		return int(n), newError("DBC->get", rc)
	}
	return 0, nil
}

// MultipleKey walks a buffer filled by GetMultipleKey. Key and value
// slices alias the buffer.
type MultipleKey struct {
	buf []byte
	p   int // offset of the next u_int32_t, walking down from the end
}

// NewMultipleKey starts a walk over buf (the whole slice given to
// GetMultipleKey). See DB_MULTIPLE_INIT.
func NewMultipleKey(buf []byte) MultipleKey {
	return MultipleKey{buf: buf, p: len(buf) - 4}
}

// Next returns the next pair, or ok false at the end (or on a malformed
// buffer). See DB_MULTIPLE_KEY_NEXT.
func (m *MultipleKey) Next() (key, value []byte, ok bool) {
	if m.p < 12 {
		return nil, nil, false
	}
	u := func(i int) int { return int(binary.NativeEndian.Uint32(m.buf[i:])) }
	koff := binary.NativeEndian.Uint32(m.buf[m.p:])
	if koff == 0xffffffff {
		m.p = -1
		return nil, nil, false
	}
	klen, voff, vlen := u(m.p-4), u(m.p-8), u(m.p-12)
	if int(koff)+klen > len(m.buf) || voff+vlen > len(m.buf) {
		m.p = -1
		return nil, nil, false
	}
	m.p -= 16
	return m.buf[koff : int(koff)+klen : int(koff)+klen], m.buf[voff : voff+vlen : voff+vlen], true
}

// Put stores key/value through the cursor (KeyFirst, Current, ...). See
// DBC->put.
func (c *Cursor) Put(key, value []byte, flags uint32) error {
	if c.p == nil {
		return errInvalid("DBC->put")
	}
	rc := C.dbgo_dbc_put(c.p, cptr(key), C.size_t(len(key)), cptr(value), C.size_t(len(value)), C.u_int32_t(flags))
	if rc != 0 {
		return newError("DBC->put", rc)
	}
	return nil
}

// Del deletes the record under the cursor. See DBC->del.
func (c *Cursor) Del(flags uint32) error {
	if c.p == nil {
		return errInvalid("DBC->del")
	}
	if rc := C.dbgo_dbc_del(c.p, C.u_int32_t(flags)); rc != 0 {
		return newError("DBC->del", rc)
	}
	return nil
}
