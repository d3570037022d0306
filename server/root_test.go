package server

import (
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

// TestRootStateRules: only the first commit storing ROOT_OID is the root's
// first commit; staging it marks the root stored for good and wakes the
// allocations waiting for ROOT_OID; a commit without ROOT_OID changes
// nothing.
func TestRootStateRules(t *testing.T) {
	var r rootState
	if r.firstCommit([]uint64{1, 2}) {
		t.Fatal("a commit without ROOT_OID counted as the root's first")
	}
	if !r.firstCommit([]uint64{record.RootOID, 5}) {
		t.Fatal("the first commit of ROOT_OID not recognised")
	}
	freed := make(chan struct{})
	r.freed = freed
	r.committed([]uint64{3, 4})
	if r.stored || r.freed == nil {
		t.Fatal("a commit without ROOT_OID marked the root stored or woke its waiters")
	}
	r.committed([]uint64{record.RootOID, 4})
	if !r.stored {
		t.Fatal("root not stored after its first commit")
	}
	select {
	case <-freed:
	default:
		t.Fatal("allocations waiting for ROOT_OID not woken by its commit")
	}
	if r.freed != nil {
		t.Fatal("freed channel kept after release")
	}
	if r.firstCommit([]uint64{record.RootOID}) {
		t.Fatal("a later commit of ROOT_OID counted as its first")
	}
	r.released() // nobody waits: a no-op, no double close
}
