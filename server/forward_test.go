package server

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"
)

// TestForwardCommands: on a master (here a standalone server), A hands
// out oids owned by no connection and F commits a replica's frames through
// the commit path: the master's other clients are invalidated, the reply
// is the status and the run's token, and a refusal carries its status
// with a zero token. The F connection's own invalidations are dropped.
func TestForwardCommands(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	local := ts.dial(t)
	root := local.newOIDs(1)[0]
	if _, st := local.commit(rec(root, "root")); st != 'O' {
		t.Fatalf("root commit: %q", st)
	}
	site := ts.dialRaw(t)
	site.send([]byte{cmdAllocate}, u32(3))
	b := site.read(9)
	first := binary.BigEndian.Uint64(b[1:])
	if b[0] != statusOK || first == root {
		t.Fatalf("A 3: %q first %d", b[0], first)
	}
	// Owned by no connection here, so F may commit them; a local client's
	// oids stay its own (rule 7).
	local.sync()
	site.send([]byte{cmdForward}, u64(0), u32(uint32(len(txnData(rec(first, "fwd"))))), txnData(rec(first, "fwd")))
	site.status(statusOK)
	site.read(forwardTokenLen) // the memory store has no token: only the length is fixed
	if inv := local.sync(); !slices.Equal(inv, []uint64{first}) {
		t.Fatalf("the master's client after F: %v", inv)
	}
	if st, got := local.load(first); st != 'O' || string(got) != string(rec(first, "fwd")) {
		t.Fatalf("load of the forwarded record: %q %q", st, got)
	}
	mine := local.newOIDs(1)[0]
	data := txnData(rec(mine, "stolen"))
	site.send([]byte{cmdForward}, u64(0), u32(uint32(len(data))), data)
	site.status(statusRefused)
	if tok := site.read(forwardTokenLen); !slices.Equal(tok, make([]byte, forwardTokenLen)) {
		t.Fatalf("token of a refused F: %x", tok)
	}
	// A commit on the master invalidates the site's connection too; its
	// next F drops that set instead of sending it.
	if _, st := local.commit(rec(mine, "local")); st != 'O' {
		t.Fatalf("local commit: %q", st)
	}
	data = txnData(rec(first+1, "again"))
	site.send([]byte{cmdForward}, u64(0), u32(uint32(len(data))), data)
	site.status(statusOK)
	site.read(forwardTokenLen)
	site.send([]byte{cmdAllocate}, u32(0))
	site.expectClosed(30 * time.Second) // A 0 is malformed
}

// TestRunSetRemoveSorted: removal splits runs and keeps the count.
func TestRunSetRemoveSorted(t *testing.T) {
	var s runSet
	s.addRuns([]run{{1, 5}, {10, 12}, {20, 21}})
	s.removeSorted([]uint64{0, 1, 3, 11, 20, 30})
	want := []run{{2, 3}, {4, 5}, {10, 11}}
	if !slices.Equal(s.runs, want) || s.len() != 3 {
		t.Fatalf("after removal: %v (%d oids), want %v", s.runs, s.len(), want)
	}
}
