//go:build bdb

package repl

import (
	"bytes"
	"slices"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestReplServerForward: a stock-protocol client of a replica allocates
// oids (forwarded A) and commits (forwarded F); right after 'O' the
// records load on the replica (read-your-writes) and on the master,
// another client of the replica is told of the change, the committer is
// not; a refusal by the master reaches the client with its status.
func TestReplServerForward(t *testing.T) {
	sites := startGroup(t, 3)
	m, r := sites[0], sites[1]
	c := dial(t, m)
	heads := setupRoot(t, c, 2)
	head0 := record.Build(heads[0], []byte("head 0"))
	testwait.For(t, r.name+" serving the root", func() bool { return loadsAs(r, heads[0], head0) })

	rc, other := dial(t, r), dial(t, r)
	if _, err := other.Sync(); err != nil {
		t.Fatal(err)
	}
	oids, err := rc.NewOIDs(2)
	if err != nil || len(oids) != 2 || oids[0] == 0 || oids[0] == oids[1] || slices.Contains(heads, oids[0]) || slices.Contains(heads, oids[1]) {
		t.Fatalf("oids allocated through the replica: %v %v", oids, err)
	}
	leaf := record.Build(oids[0], []byte("leaf via replica"))
	head := record.Build(heads[0], []byte("head via replica"), oids[0])
	if _, st, err := rc.Commit([][]byte{head, leaf}); err != nil || st != wire.StatusOK {
		t.Fatalf("commit through the replica: %q %v", st, err)
	}
	// No waiting from here on: the answer came once the replica applied it.
	for _, want := range [][]byte{head, leaf} {
		oid := record.OID(want)
		if st, got, err := rc.Load(oid); err != nil || st != wire.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("load of %d on the replica right after O: %q %q %v", oid, st, got, err)
		}
		if !loadsAs(m, oid, want) {
			t.Fatalf("oid %d not on the master after O", oid)
		}
	}
	if inv, err := other.Sync(); err != nil || !slices.Contains(inv, heads[0]) {
		t.Fatalf("the replica's other client after O: invalidations %v %v, want %d", inv, err, heads[0])
	}
	if inv, err := rc.Sync(); err != nil || slices.Contains(inv, heads[0]) {
		t.Fatalf("the committer told of its own commit: %v %v", inv, err)
	}

	// Refusals decided by the master: an oid handed to a client of the
	// master (rule 7: E), a reference to an oid without a record (rule
	// 10: I). Nothing is stored and the connection stays usable.
	mine, err := c.NewOIDs(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, st, err := rc.Commit([][]byte{record.Build(mine[0], []byte("stolen"))}); err != nil || st != wire.StatusRefused {
		t.Fatalf("commit of the master's client's oid through the replica: %q %v, want E", st, err)
	}
	dangling := record.Build(heads[1], []byte("dangling"), oids[1])
	if _, st, err := rc.Commit([][]byte{dangling}); err != nil || st != wire.StatusInvalid {
		t.Fatalf("dangling reference through the replica: %q %v, want I", st, err)
	}
	if st, got, err := rc.Load(heads[1]); err != nil || st != wire.StatusOK || bytes.Equal(got, dangling) {
		t.Fatalf("load after the refusals: %q %q %v", st, got, err)
	}
}
