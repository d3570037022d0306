package server

import (
	"slices"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
)

// Removals by a collection that would put a connection's invalid set over
// its cap in oids or in runs are not told to it, and it stays open (I2,
// I7): the objects are unreachable and their oids never reused, so the
// connection misses nothing it could still reach. A QA round had closed
// every connection that did not sync during a collection of more objects
// than the cap (524,301 records, every other one dropped, P: 0 of 4
// observers left).
func TestRemovalsOverCapKeepConnections(t *testing.T) {
	const maxOIDs, maxRuns = 100, 10
	ts := startServer(t, Config{MaxInvalid: maxOIDs, MaxInvalidRuns: maxRuns}, newMemStore())
	a := ts.dial(t)
	idle := ts.dial(t)
	a.sync()
	idle.sync()

	ts.srv.InvalidateRemoved([]uint64{3, 4}) // within the caps: told
	oneRun := make([]uint64, maxOIDs+50)     // over the cap in oids
	for i := range oneRun {
		oneRun[i] = uint64(1000 + i)
	}
	ts.srv.InvalidateRemoved(oneRun)
	var scattered []uint64 // over the cap in runs
	for i := range 2 * maxRuns {
		scattered = append(scattered, uint64(5000+2*i))
	}
	ts.srv.InvalidateRemoved(scattered)

	for name, c := range map[string]*client{"a": a, "idle": idle} {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		inv, err := c.wc().Sync()
		if err != nil {
			t.Fatalf("%s after removals over its cap: %v", name, err)
		}
		slices.Sort(inv)
		if !slices.Equal(inv, []uint64{3, 4}) {
			t.Errorf("%s told %v, want the removals within its cap [3 4]", name, inv)
		}
	}
	if !containsLog(ts, "removed oids not told") {
		t.Error("removals left untold are not logged")
	}

	// Removals that fill a set are forgotten to make room for a commit's
	// changes, which must be told: the connection stays open (QA: a
	// collection left every idle set at its cap, and the next one-record
	// commit closed them all).
	for _, fill := range [][]uint64{
		seq(20000, maxOIDs-1),        // the cap in oids, nearly
		everyOther(30000, maxRuns-1), // the cap in runs, nearly
	} {
		ts.srv.InvalidateRemoved(fill)
		o := a.newOIDs(4)
		if _, st := a.commit(rec(o[0], "c"), rec(o[2], "c")); st != 'O' { // 2 oids, 2 runs
			t.Fatalf("commit: %q", st)
		}
		idle.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		inv, err := idle.wc().Sync()
		if err != nil {
			t.Fatalf("idle, its set full of removals, after a commit of 2 records: %v", err)
		}
		slices.Sort(inv)
		if !slices.Equal(inv, []uint64{o[0], o[2]}) {
			t.Errorf("idle told %d oids, want the commit's 2; the removals forgotten", len(inv))
		}
		a.sync()
	}

	// A commit's invalidations still close a connection over its cap.
	o := a.newOIDs(60)
	var recs [][]byte
	for i := 0; i < 16; i += 2 { // 8 runs, within the cap
		recs = append(recs, rec(o[i], "x"))
	}
	if _, st := a.commit(recs...); st != 'O' {
		t.Fatalf("commit of %d runs: %q", len(recs), st)
	}
	recs = recs[:0]
	for i := 16; i < 32; i += 2 {
		recs = append(recs, rec(o[i], "y"))
	}
	if _, st := a.commit(recs...); st != 'O' { // idle: 16 runs since its sync
		t.Fatalf("second commit: %q", st)
	}
	idle.expectClosed(5 * time.Second)
}

// On a replica, commits applied by replication are told like a commit's
// (InvalidateReplicated): over the cap, the connection is closed, as it
// could otherwise load an old version of a changed object (I7).
func TestReplicatedOverCapCloses(t *testing.T) {
	ts := startServer(t, Config{MaxInvalid: 100}, newMemStore())
	idle := ts.dial(t)
	idle.sync()
	oids := make([]uint64, 60)
	for i := range oids {
		oids[i] = uint64(1000 + i)
	}
	ts.srv.InvalidateReplicated(oids)
	for i := range oids {
		oids[i] += 100
	}
	ts.srv.InvalidateReplicated(oids) // 120 oids since its sync
	idle.expectClosed(5 * time.Second)
}

// The end-to-end form of TestRemovalsOverCapKeepConnections on the engine:
// a commit drops more objects than an invalid set may hold, a full
// collection removes them, and connections that did not sync meanwhile
// stay open.
func TestCollectionOverCapKeepsConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		// Two of the full collection's batches of 512 removals fill a set.
		const maxOIDs = 1024
		st := openEngine(t, backend, engine.Options{GC: engine.GCPolicy{Mode: engine.GCManual}})
		ts := startServer(t, Config{MaxInvalid: maxOIDs}, st)
		a := ts.dial(t)
		observers := []*client{ts.dial(t), ts.dial(t)}
		for _, c := range observers {
			c.sync()
		}
		// Three commits within the cap, each a part of the subtree; the
		// observers sync after each, as a client that keeps up does.
		var subtree []uint64
		for range 3 {
			var oids []uint64
			for len(oids) < maxOIDs/2 {
				oids = append(oids, a.newOIDs(min(255, maxOIDs/2-len(oids)))...)
			}
			oids = slices.DeleteFunc(oids, func(o uint64) bool { return o == 0 }) // the root's
			var recs [][]byte
			for _, o := range oids {
				recs = append(recs, rec(o, "leaf"))
			}
			subtree = append(subtree, oids...)
			recs = append(recs, rec(0, "root", subtree...))
			if _, st := a.commit(recs...); st != 'O' {
				t.Fatalf("commit: %q", st)
			}
			for _, c := range observers {
				c.sync()
			}
		}
		kept := subtree[:5]
		if _, st := a.commit(rec(0, "root", kept...)); st != 'O' { // drops 295 objects
			t.Fatalf("dropping commit: %q", st)
		}
		for _, c := range observers {
			c.sync()
		}
		a.send([]byte{'P'})
		a.status('O')
		gone := subtree[len(subtree)-1]
		waitFor(t, 30*time.Second, "the dropped objects removed (K)", func() bool {
			a.sync() // the packer may have been told of some
			st, _ := a.load(gone)
			return st == 'K'
		})
		// Then an ordinary commit: the observers' sets, filled by the
		// removals, make room for it.
		if _, st := a.commit(rec(kept[0], "changed")); st != 'O' {
			t.Fatalf("commit after the collection: %q", st)
		}
		for i, c := range observers {
			c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			inv, err := c.wc().Sync()
			if err != nil {
				t.Fatalf("observer %d after a collection of %d objects (cap %d) and a commit: %v", i, len(subtree)-len(kept), maxOIDs, err)
			}
			if !slices.Contains(inv, kept[0]) {
				t.Errorf("observer %d not told of the commit after the collection", i)
			}
			if st, _ := c.load(kept[0]); st != 'O' {
				t.Fatalf("observer %d: load of a kept object: %q", i, st)
			}
		}
	})
}

// A commit whose runs, told to every other open connection, would take the
// invalid sets of all connections together over --max-invalid-memory is
// refused with E (rule 1), like one over the per-set caps: applied, it
// closed the connections processed after the total went over (I7),
// however recently they had synced. One that fits is applied.
func TestCommitOverInvalidMemoryRefusedKeepsOthers(t *testing.T) {
	const totalRuns = 100
	ts := startServer(t, Config{MaxInvalidMemory: totalRuns * runBytes}, newMemStore())
	a := ts.dial(t)
	var idle []*client
	for range 5 {
		c := ts.dial(t)
		c.sync()
		idle = append(idle, c)
	}
	o := a.newOIDs(100)
	commitRuns := func(n int) byte {
		var recs [][]byte
		for i := range n {
			recs = append(recs, rec(o[2*i+1], "x")) // odd oids: n runs
		}
		_, st := a.commit(recs...)
		return st
	}
	if st := commitRuns(30); st != 'E' { // 5 × 30 runs > 100
		t.Errorf("commit of 30 runs to 5 other connections under a total of %d runs: %q, want E", totalRuns, st)
	}
	if st := commitRuns(10); st != 'O' { // 5 × 10 runs
		t.Errorf("commit of 10 runs to 5 other connections: %q, want O", st)
	}
	for i, c := range idle {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		inv, err := c.wc().Sync()
		if err != nil {
			t.Fatalf("idle connection %d after the refused commit: %v", i, err)
		}
		if len(inv) != 10 {
			t.Errorf("idle connection %d told %d oids, want the 10 of the applied commit", i, len(inv))
		}
	}
	if !containsLog(ts, "--max-invalid-memory") {
		t.Error("the refusal does not name --max-invalid-memory")
	}
}

// seq returns the n oids from first.
func seq(first uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = first + uint64(i)
	}
	return s
}

// everyOther returns n oids from first, each a run of its own.
func everyOther(first uint64, n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = first + 2*uint64(i)
	}
	return s
}

// Removals that fill the budget of all sets together (--max-invalid-memory)
// are forgotten before a commit's changes would take it over: a
// connection that holds none of them is not closed for the others' (QA:
// a one-record commit closed an idle observer after a collection filled
// the budget).
func TestRemovalsOverMemoryGiveWay(t *testing.T) {
	const totalRuns = 100
	ts := startServer(t, Config{MaxInvalidMemory: totalRuns * runBytes}, newMemStore())
	holder := ts.dial(t)
	holder.sync()
	ts.srv.InvalidateRemoved(everyOther(50000, totalRuns-1)) // the holder's set: the budget, nearly
	a := ts.dial(t)
	var fresh []*client // connections that hold no removal
	for range 20 {
		c := ts.dial(t)
		c.sync()
		fresh = append(fresh, c)
	}
	o := a.newOIDs(4)
	if _, st := a.commit(rec(o[1], "c"), rec(o[3], "c")); st != 'O' {
		t.Fatalf("commit: %q", st)
	}
	for i, c := range append(fresh, holder) {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		inv, err := c.wc().Sync()
		if err != nil {
			t.Fatalf("connection %d after a commit of 2 runs with the budget full of removals: %v", i, err)
		}
		if slices.Sort(inv); !slices.Equal(inv, []uint64{o[1], o[3]}) {
			t.Errorf("connection %d told %v, want the commit's oids", i, inv)
		}
	}
}

// On a replica the committer's own set is told of its forwarded commit
// (by the change follower, before the reply), so the rule against commits
// over --max-invalid-memory counts it: a commit that fits the other
// connections' sets but not with the committer's is refused with E. It
// used to be forwarded, stored by the master, and its connection closed
// without a reply (QA: the outcome of a stored commit unknown to its
// client).
func TestReplicaCommitOverInvalidMemoryCountsCommitter(t *testing.T) {
	const totalRuns = 100
	rts, f := startFakeGroupCfg(t, Config{MaxInvalidMemory: totalRuns * runBytes})
	x, y := rts.dial(t), rts.dial(t)
	y.sync()
	o := x.newOIDs(120)
	var recs [][]byte
	for i := 0; i < 120; i += 2 { // 60 runs: 60 for y fits, 120 with x does not
		recs = append(recs, rec(o[i], "x"))
	}
	f.gate <- struct{}{} // should it be forwarded
	x.begin()
	x.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	st, err := x.wc().Finish(txnData(recs...))
	if err != nil {
		t.Fatalf("commit of 60 runs through the replica, 2 connections, a total of %d runs: %v (no reply)", totalRuns, err)
	}
	if st != 'E' {
		t.Fatalf("commit of 60 runs through the replica: %q, want E", st)
	}
	for name, c := range map[string]*client{"x": x, "y": y} {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.wc().Sync(); err != nil {
			t.Errorf("%s after the refused commit: %v", name, err)
		}
	}
}
