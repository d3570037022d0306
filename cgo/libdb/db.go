//go:build bdb

package libdb

/*
#include "libdbgo.h"
*/
import "C"

import "unsafe"

// DB is a database handle. Create it with DBCreate, configure it, then Open
// it; Close it exactly once, even after a failed Open.
type DB struct {
	p *C.DB
	// notFound is the error of every Get that misses, made once per
	// handle: a miss is a normal outcome (a new object's old record,
	// count and garbage entry are all misses) and allocates nothing.
	notFound *Error
}

// DBCreate allocates a database handle in env (nil env: standalone). See
// db_create.
func DBCreate(env *Env) (*DB, error) {
	var ep *C.DB_ENV
	if env != nil {
		if env.p == nil {
			return nil, errInvalid("db_create")
		}
		ep = env.p
	}
	var p *C.DB
	if rc := C.dbgo_db_create(&p, ep); rc != 0 {
		return nil, newError("db_create", rc)
	}
	return &DB{p: p, notFound: &Error{Op: "DB->get", Code: int(C.DB_NOTFOUND)}}, nil
}

func txnPtr(t *Txn) *C.DB_TXN {
	if t == nil {
		return nil
	}
	return t.p
}

// SetPageSize sets the page size used when the file is created. See
// DB->set_pagesize.
func (d *DB) SetPageSize(n uint32) error {
	if d.p == nil {
		return errInvalid("DB->set_pagesize")
	}
	if rc := C.dbgo_db_set_pagesize(d.p, C.u_int32_t(n)); rc != 0 {
		return newError("DB->set_pagesize", rc)
	}
	return nil
}

// SetFlags sets database flags (such as Chksum) before Open; flags that
// shape the file only take effect when Open creates it. See DB->set_flags.
func (d *DB) SetFlags(flags uint32) error {
	if d.p == nil {
		return errInvalid("DB->set_flags")
	}
	if rc := C.dbgo_db_set_flags(d.p, C.u_int32_t(flags)); rc != 0 {
		return newError("DB->set_flags", rc)
	}
	return nil
}

// Flags returns the database flags; after Open they include Chksum when
// the file keeps page checksums. See DB->get_flags.
func (d *DB) Flags() (uint32, error) {
	if d.p == nil {
		return 0, errInvalid("DB->get_flags")
	}
	var f C.u_int32_t
	if rc := C.dbgo_db_get_flags(d.p, &f); rc != 0 {
		return 0, newError("DB->get_flags", rc)
	}
	return uint32(f), nil
}

// Open opens (or with Create creates) file with access method typ inside
// txn (nil: no transaction, or AutoCommit). See DB->open.
func (d *DB) Open(txn *Txn, file string, typ DBType, flags uint32, mode int) error {
	if d.p == nil {
		return errInvalid("DB->open")
	}
	f := cstr(file)
	defer C.free(unsafe.Pointer(f))
	if rc := C.dbgo_db_open(d.p, txnPtr(txn), f, C.int(typ), C.u_int32_t(flags), C.int(mode)); rc != 0 {
		return newError("DB->open", rc)
	}
	return nil
}

// Close closes the handle, flushing its dirty pages unless flags has
// NoSync; the handle is dead afterwards whatever the result. See DB->close.
func (d *DB) Close(flags uint32) error {
	if d.p == nil {
		return errInvalid("DB->close")
	}
	p := d.p
	d.p = nil
	if rc := C.dbgo_db_close(p, C.u_int32_t(flags)); rc != 0 {
		return newError("DB->close", rc)
	}
	return nil
}

// Get reads the value of key into buf (reusing its capacity, growing it on
// DB_BUFFER_SMALL) and returns the filled slice, which may alias buf.
// A missing key gives an *Error with ErrNotFound, the same one for every
// miss on this handle (callers must not modify it). See DB->get.
func (d *DB) Get(txn *Txn, key, buf []byte, flags uint32) ([]byte, error) {
	v, _, err := d.GetLimit(txn, key, buf, -1, flags)
	return v, err
}

// GetLimit is Get that grows buf only to hold a value of at most limit
// bytes (limit < 0: no limit). A longer value that does not fit buf is not
// copied: libdb answers DB_BUFFER_SMALL with the value's size before it
// reads an overflow item's pages, so nothing of it is allocated, in Go or
// in C. The error is then an *Error with ErrBufferSmall and need is the
// value's size; otherwise need is the length of the value returned. A
// slice that grew is allocated to the value's exact size, so the caller
// may keep it without copying. See DB->get and DB_DBT_USERMEM.
func (d *DB) GetLimit(txn *Txn, key, buf []byte, limit int, flags uint32) (v []byte, need int, err error) {
	if d.p == nil {
		return nil, 0, errInvalid("DB->get")
	}
	for {
		var n C.u_int32_t
		b := buf[:cap(buf)]
		rc := C.dbgo_db_get(d.p, txnPtr(txn), cptr(key), C.size_t(len(key)),
			cptr(b), C.size_t(len(b)), &n, C.u_int32_t(flags))
		switch rc {
		case 0:
			return b[:n], int(n), nil
		case C.DB_BUFFER_SMALL:
			if limit >= 0 && int(n) > limit {
				return nil, int(n), newError("DB->get", rc)
			}
			buf = make([]byte, int(n))
		case C.DB_NOTFOUND:
			return nil, 0, d.notFound
		default:
			return nil, 0, newError("DB->get", rc)
		}
	}
}

// Put stores value under key (NoOverwrite: fail with ErrKeyExist if
// present). See DB->put.
func (d *DB) Put(txn *Txn, key, value []byte, flags uint32) error {
	if d.p == nil {
		return errInvalid("DB->put")
	}
	rc := C.dbgo_db_put(d.p, txnPtr(txn), cptr(key), C.size_t(len(key)),
		cptr(value), C.size_t(len(value)), C.u_int32_t(flags))
	if rc != 0 {
		return newError("DB->put", rc)
	}
	return nil
}

// Del removes key; a missing key gives ErrNotFound. See DB->del.
func (d *DB) Del(txn *Txn, key []byte, flags uint32) error {
	if d.p == nil {
		return errInvalid("DB->del")
	}
	if rc := C.dbgo_db_del(d.p, txnPtr(txn), cptr(key), C.size_t(len(key)), C.u_int32_t(flags)); rc != 0 {
		return newError("DB->del", rc)
	}
	return nil
}

// PageSize returns the database page size. See DB->get_pagesize.
func (d *DB) PageSize() (int, error) {
	if d.p == nil {
		return 0, errInvalid("DB->get_pagesize")
	}
	var n C.u_int32_t
	if rc := C.dbgo_db_get_pagesize(d.p, &n); rc != 0 {
		return 0, newError("DB->get_pagesize", rc)
	}
	return int(n), nil
}

// LastPage returns the number of the last page of the database file as
// the cache sees it: pages created but not yet written out count, so the
// file may still end before it. See DB_MPOOLFILE->get_last_pgno.
func (d *DB) LastPage() (uint32, error) {
	if d.p == nil {
		return 0, errInvalid("DB_MPOOLFILE->get_last_pgno")
	}
	var n C.u_int32_t
	if rc := C.dbgo_db_last_pgno(d.p, &n); rc != 0 {
		return 0, newError("DB_MPOOLFILE->get_last_pgno", rc)
	}
	return uint32(n), nil
}

// Type returns the access method of the open database. See DB->get_type.
func (d *DB) Type() (DBType, error) {
	if d.p == nil {
		return Unknown, errInvalid("DB->get_type")
	}
	var t C.int
	if rc := C.dbgo_db_get_type(d.p, &t); rc != 0 {
		return Unknown, newError("DB->get_type", rc)
	}
	return DBType(t), nil
}

// DBStat holds database statistics; the btree or hash fields are zero for
// the other access method. See DB->stat.
type DBStat struct {
	Type     DBType
	Keys     uint32 // unique keys (exact unless FastStat)
	Data     uint32 // key/data pairs
	PageSize uint32
	Pages    uint32 // pages in the file
	// btree
	Levels, InternalPages, LeafPages, DupPages, OverflowPages, FreePages uint32
	// hash
	Buckets, BigPages, Overflows uint32
}

// Stat returns database statistics. See DB->stat.
func (d *DB) Stat(txn *Txn, flags uint32) (DBStat, error) {
	if d.p == nil {
		return DBStat{}, errInvalid("DB->stat")
	}
	var s C.dbgo_db_stat_t
	if rc := C.dbgo_db_stat(d.p, txnPtr(txn), &s, C.u_int32_t(flags)); rc != 0 {
		return DBStat{}, newError("DB->stat", rc)
	}
	return DBStat{
		Type: DBType(s._type), Keys: uint32(s.nkeys), Data: uint32(s.ndata),
		PageSize: uint32(s.pagesize), Pages: uint32(s.pagecnt),
		Levels: uint32(s.levels), InternalPages: uint32(s.int_pg), LeafPages: uint32(s.leaf_pg),
		DupPages: uint32(s.dup_pg), OverflowPages: uint32(s.over_pg), FreePages: uint32(s.free_pg),
		Buckets: uint32(s.buckets), BigPages: uint32(s.bigpages), Overflows: uint32(s.overflows),
	}, nil
}
