//go:build bdb

package libdb

/*
#include "libdbgo.h"
*/
import "C"

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
