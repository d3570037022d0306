//go:build bdb

package bdb

import (
	"errors"

	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// WrapForTest exposes wrap to the external tests.
var WrapForTest = wrap

// PageSize returns the page size of the file. See DB->get_pagesize.
func (d *DB) PageSize() (int, error) {
	h, _, err := d.begin(nil)
	if err != nil {
		return 0, err
	}
	defer d.end(nil)
	n, err := h.PageSize()
	return n, wrap("page size of "+d.file, err)
}

// Stat returns the file's statistics; fast skips the counts that need a
// full walk. See DB->stat.
func (d *DB) Stat(txn *Txn, fast bool) (libdb.DBStat, error) {
	h, lt, err := d.begin(txn)
	if err != nil {
		return libdb.DBStat{}, err
	}
	defer d.end(txn)
	var flags uint32
	if fast {
		flags = libdb.FastStat
	}
	s, err := h.Stat(lt, flags)
	return s, wrap("stat "+d.file, err)
}

// Exists reports whether key is present (the replication tests count
// missing keys).
func (d *DB) Exists(txn *Txn, key []byte) (bool, error) {
	_, err := d.Get(txn, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
