//go:build bdb

package bdb

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// Access is a database access method.
type Access int

const (
	// Btree keeps keys in bytewise order (DB_BTREE).
	Btree Access = iota
	// Hash keeps keys in a hash table, unordered (DB_HASH).
	Hash
	// Existing opens a file with whatever method it was created with
	// (DB_UNKNOWN); it cannot create one.
	Existing
)

// DBOptions configure Env.OpenDB.
type DBOptions struct {
	// Access method; used when the file is created, else checked.
	Access Access
	// Create creates the file if it does not exist (DB_CREATE).
	Create bool
	// PageSize at creation, a power of two from 512 to 65536; 0 means
	// libdb's choice (from the file system block size).
	PageSize int
	// Checksum gives a file created by this open page checksums
	// (DB_CHKSUM): libdb checks each page it reads from disk, so a
	// damaged page is refused instead of served. A file keeps what it was
	// created with; the option does nothing for one that exists.
	Checksum bool
}

// DB is an open database file of an Env. It is safe for concurrent use and
// stays open until it or its Env is closed.
type DB struct {
	env  *Env
	file string
	typ  Access
	// checksums: the file keeps page checksums (created with Checksum).
	checksums bool

	ldb atomic.Pointer[libdb.DB] // nil once closed

	// notFound is what get returns for a missing key: one error per
	// handle, naming the file, so that a miss (three per new object in a
	// commit) allocates nothing. It matches ErrNotFound and kv.ErrNotFound.
	notFound error

	pool     sync.Pool // *[]byte buffers for Get
	bulkPool sync.Pool // *[]byte DB_MULTIPLE_KEY buffers of cursors
}

// OpenDB opens (or creates) the database file, relative to the
// environment directory, in its own transaction; a read-only environment
// opens it DB_RDONLY. See DB->open.
func (e *Env) OpenDB(file string, opts DBOptions) (*DB, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	what := "open " + file + " in " + e.dir
	ldb, err := libdb.DBCreate(e.env)
	if err != nil {
		return nil, wrap(what, err)
	}
	typ := libdb.Btree
	switch opts.Access {
	case Hash:
		typ = libdb.Hash
	case Existing:
		typ = libdb.Unknown
	}
	if opts.PageSize != 0 {
		if err := ldb.SetPageSize(uint32(opts.PageSize)); err != nil {
			ldb.Close(0)
			return nil, wrap(what, err)
		}
	}
	if opts.Checksum && opts.Create && !e.readOnly {
		if err := ldb.SetFlags(libdb.Chksum); err != nil {
			ldb.Close(0)
			return nil, wrap(what, err)
		}
	}
	flags := libdb.Thread
	if e.readOnly {
		flags |= libdb.RdOnly
	} else {
		flags |= libdb.AutoCommit
		if opts.Create {
			flags |= libdb.Create
		}
	}
	if err := ldb.Open(nil, file, typ, flags, 0); err != nil {
		ldb.Close(0)
		if msg := e.env.LastError(); msg != "" {
			return nil, wrap(what+" (libdb: "+msg+")", err)
		}
		return nil, wrap(what, err)
	}
	at, err := ldb.Type()
	if err != nil {
		ldb.Close(0)
		return nil, wrap(what, err)
	}
	dbFlags, err := ldb.Flags()
	if err != nil {
		ldb.Close(0)
		return nil, wrap(what, err)
	}
	d := &DB{env: e, file: file, typ: Btree, notFound: getNotFound(file),
		checksums: dbFlags&libdb.Chksum != 0}
	d.ldb.Store(ldb)
	if at == libdb.Hash {
		d.typ = Hash
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		ldb.Close(0)
		return nil, ErrClosed
	}
	e.dbs[d] = struct{}{}
	e.mu.Unlock()
	return d, nil
}

// bulkBuf returns a bulk read buffer (bulkSize bytes) from the pool.
func (d *DB) bulkBuf() *[]byte {
	if b, ok := d.bulkPool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, bulkSize)
	return &b
}

// File returns the database file name.
func (d *DB) File() string { return d.file }

// Checksums reports whether the file keeps page checksums (see
// DBOptions.Checksum).
func (d *DB) Checksums() bool { return d.checksums }

// Access returns the access method of the open file (Btree or Hash).
func (d *DB) Access() Access { return d.typ }

// Close closes the database. No transaction may be using it. A second
// Close returns nil. See DB->close.
func (d *DB) Close() error {
	e := d.env
	e.mu.Lock()
	if e.dbs != nil {
		delete(e.dbs, d)
	}
	e.mu.Unlock()
	return d.closeHandle()
}

func (d *DB) closeHandle() error {
	ldb := d.ldb.Swap(nil)
	if ldb == nil {
		return nil
	}
	if err := ldb.Close(0); err != nil {
		return wrap("close "+d.file+" in "+d.env.dir, err)
	}
	return nil
}

// handle returns the libdb handle or ErrClosed. Callers are inside enter or
// hold a live Txn, so the environment outlives the call.
func (d *DB) handle() (*libdb.DB, error) {
	h := d.ldb.Load()
	if h == nil {
		return nil, ErrClosed
	}
	return h, nil
}

// begin pins the environment for a call: through txn (locked) or, for a nil
// txn, through Env.enter. end undoes it.
func (d *DB) begin(txn *Txn) (*libdb.DB, *libdb.Txn, error) {
	if txn == nil {
		if err := d.env.enter(); err != nil {
			return nil, nil, err
		}
	} else if err := txn.lock(); err != nil {
		return nil, nil, err
	}
	h, err := d.handle()
	if err != nil {
		d.end(txn)
		return nil, nil, err
	}
	if txn == nil {
		return h, nil, nil
	}
	return h, txn.lt, nil
}

func (d *DB) end(txn *Txn) {
	if txn == nil {
		d.env.leave()
	} else {
		txn.mu.Unlock()
	}
}

// Get returns a copy of the value stored under key, or an error matching
// ErrNotFound. txn nil reads outside any transaction. See DB->get.
func (d *DB) Get(txn *Txn, key []byte) ([]byte, error) {
	return d.get(txn, key, 0, -1)
}

// poolKeep is the largest read buffer kept in DB.pool: a value up to this
// size is read into a pooled buffer and copied out (one libdb call once
// the buffer has grown); a larger one is read into a buffer of its exact
// size, which is returned without a copy. Pooled buffers are thus a small
// constant per concurrent reader.
const poolKeep = 64 << 10

// get reads key into a pooled buffer. limit ≥ 0 bounds the value that is
// allocated and read: a longer one is not read (libdb gives its size before
// reading its overflow pages) and the error is a *kv.ValueSizeError giving
// its size; a longer value that fits the pooled read buffer (at most
// poolKeep bytes) is returned (Store.GetBounded).
func (d *DB) get(txn *Txn, key []byte, flags uint32, limit int) ([]byte, error) {
	h, lt, err := d.begin(txn)
	if err != nil {
		return nil, err
	}
	defer d.end(txn)
	pb, _ := d.pool.Get().(*[]byte)
	if pb == nil {
		b := make([]byte, 4096)
		pb = &b
	}
	v, need, err := h.GetLimit(lt, key, *pb, limit, flags)
	if err != nil {
		d.pool.Put(pb)
		if le, ok := err.(*libdb.Error); ok {
			switch libdb.Errno(le.Code) {
			case libdb.ErrNotFound:
				return nil, d.notFound
			case libdb.ErrBufferSmall:
				return nil, fmt.Errorf("bdb: get from %s: %w", d.file, &kv.ValueSizeError{Bucket: d.file, Size: need, Max: limit})
			}
		}
		return nil, d.env.dataErr("get from "+d.file, err)
	}
	if cap(v) > cap(*pb) {
		// A buffer of the value's exact size, made for this read.
		if cap(v) > poolKeep {
			d.pool.Put(pb)
			return v, nil
		}
		*pb = v[:cap(v)] // keep the grown buffer for next time
	}
	out := make([]byte, len(v))
	copy(out, v)
	d.pool.Put(pb)
	return out, nil
}

// Put stores value under key, replacing any previous value. See DB->put.
func (d *DB) Put(txn *Txn, key, value []byte) error {
	return d.put(txn, key, value, 0)
}

func (d *DB) put(txn *Txn, key, value []byte, flags uint32) error {
	if d.env.readOnly || (txn != nil && txn.readOnly) {
		return opErr("put into "+d.file, ErrReadOnly, nil)
	}
	h, lt, err := d.begin(txn)
	if err != nil {
		return err
	}
	defer d.end(txn)
	if err := h.Put(lt, key, value, flags); err != nil {
		return d.env.dataErr("put into "+d.file, err)
	}
	return nil
}

// Delete removes key; a missing key gives an error matching ErrNotFound.
// See DB->del.
func (d *DB) Delete(txn *Txn, key []byte) error {
	if d.env.readOnly || (txn != nil && txn.readOnly) {
		return opErr("delete from "+d.file, ErrReadOnly, nil)
	}
	h, lt, err := d.begin(txn)
	if err != nil {
		return err
	}
	defer d.end(txn)
	if err := h.Del(lt, key, 0); err != nil {
		return d.env.dataErr("delete from "+d.file, err)
	}
	return nil
}
