//go:build bdb

package bdb_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// TestGetMissAllocatesNothing: a get that misses returns the handle's one
// not-found error, which matches every not-found sentinel, names the file
// and carries libdb's code, without allocating (a new object's commit
// misses three times).
func TestGetMissAllocatesNothing(t *testing.T) {
	e := openEnv(t, t.TempDir())
	d := openDB(t, e, "miss.db", bdb.DBOptions{})
	key := []byte("missing")
	_, err := d.Get(nil, key)
	for _, want := range []error{bdb.ErrNotFound, kv.ErrNotFound, libdb.ErrNotFound} {
		if !errors.Is(err, want) {
			t.Errorf("miss %v does not match %v", err, want)
		}
	}
	if errors.Is(err, kv.ErrConflict) || errors.Is(err, bdb.ErrKeyExists) {
		t.Errorf("miss %v matches another sentinel", err)
	}
	if bdb.Code(err) != int(libdb.ErrNotFound) {
		t.Errorf("code %d, want %d", bdb.Code(err), libdb.ErrNotFound)
	}
	if msg := err.Error(); !strings.Contains(msg, "get from miss.db") || !strings.Contains(msg, "DB_NOTFOUND") {
		t.Errorf("message %q does not name the file and the cause", msg)
	}
	// The race detector's sync.Pool drops a quarter of the buffers put
	// back (a new one is two allocations): at most 1 on average there,
	// 0 otherwise; before the per-handle error a miss took 5.
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := d.Get(nil, key); !errors.Is(err, kv.ErrNotFound) {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("a missing get allocates %.1f times", allocs)
	}
}
