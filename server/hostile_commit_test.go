package server

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// A frame length that runs past the commit data with fewer than 8 bytes
// left (so no oid can be read) is answered E, not a recovered panic.
func TestShortLastFrame(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	c := ts.dial(t)
	c.begin()
	if st := c.commitData([]byte{0, 0, 0, 0x64, 0, 0}); st != statusRefused {
		t.Fatalf("status %q, want E", st)
	}
	// The connection is still served.
	if inv := c.sync(); len(inv) != 0 {
		t.Fatalf("invalid %v", inv)
	}
	if containsLog(ts, "panic") {
		t.Fatal("the commit reached a recovered panic")
	}
}

// loadFailStore is a memStore whose Load of ROOT_OID fails with an error
// other than "no record" while fail is set.
type loadFailStore struct {
	*memStore
	fail atomic.Bool
}

func (s *loadFailStore) Load(oid uint64) ([]byte, error) {
	if oid == record.RootOID && s.fail.Load() {
		return nil, errTest
	}
	return s.memStore.Load(oid)
}

// rootExists treats only "no record" as absent: when Load(0) fails
// otherwise, an allocation that would hand ROOT_OID out again (A5) fails
// (the connection is closed) rather than handing out a root that may exist.
func TestRootReleaseLoadError(t *testing.T) {
	st := &loadFailStore{memStore: newMemStore()}
	ts := startServer(t, Config{}, st)
	a := ts.dial(t)
	if o := a.newOIDs(2); o[0] != record.RootOID {
		t.Fatalf("first oids %v", o)
	}
	a.send([]byte{'.'})
	a.expectClosed(5 * time.Second)
	// ROOT_OID is released (A5): the next allocation would hand it out
	// again if Load(0) said it has no record; here Load(0) fails.
	st.fail.Store(true)
	b := ts.dial(t)
	waitFor(t, 5*time.Second, "a's unused set released", func() bool { return ts.srv.NumConns() == 1 })
	b.send([]byte{'N'})
	b.expectClosed(5 * time.Second)
	if !containsLog(ts, "oid allocation failed") {
		t.Fatal("allocation failure not logged")
	}
	// Once Load(0) works again, the root is handed out as A5 says.
	st.fail.Store(false)
	c := ts.dial(t)
	if o := c.newOIDs(1); o[0] != record.RootOID {
		t.Fatalf("after recovery: %v", o)
	}
}

// §5.5: a commit refused with I for a dangling reference (rule 10)
// invalidates nothing for the others, keeps the committer's unused oids
// its own and does not advance the commit sequence, on every storage.
func TestDanglingRefusedWithoutSideEffects(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		a := ts.dial(t)
		b := ts.dial(t)
		if _, st := a.commit(rec(0, "root")); st != 'O' {
			t.Fatalf("root: %q", st)
		}
		o := a.newOIDs(3) // o[0] stored below, o[1] and o[2] stay unused
		if _, st := a.commit(rec(o[0], "x"), rec(0, "root", o[0])); st != 'O' {
			t.Fatalf("setup: %q", st)
		}
		b.sync()
		if st, _ := b.load(o[0]); st != 'O' {
			t.Fatalf("b loads o[0]: %q", st)
		}
		seq := ts.srv.Token().Seq()
		// A updates o[0] and stores o[1], which refers to o[2]: no record.
		if _, st := a.commit(rec(o[0], "x2", o[1]), rec(o[1], "y", o[2])); st != 'I' {
			t.Fatalf("dangling: %q, want I", st)
		}
		if got := ts.srv.Token().Seq(); got != seq {
			t.Fatalf("sequence %d → %d", seq, got)
		}
		if inv := b.sync(); len(inv) != 0 {
			t.Fatalf("b told %v changed by a refused commit", inv)
		}
		if st, r := b.load(o[0]); st != 'O' || string(r) != string(rec(o[0], "x")) {
			t.Fatalf("o[0] changed: %q", st)
		}
		// A's unused oids are still A's: B may not commit them (rule 7).
		if _, st := b.commit(rec(o[1], "stolen")); st != 'E' {
			t.Fatalf("b commits a's unused oid: %q, want E", st)
		}
		// and A still can.
		if _, st := a.commit(rec(o[2], "z"), rec(o[1], "y", o[2]), rec(o[0], "x2", o[1])); st != 'O' {
			t.Fatalf("a's retry: %q", st)
		}
	})
}

// A commit refused when the storage applies it (E, rule 11, decided after
// the token passed on) frees none of the committer's oids. (Its
// invalidations went out and the sequence counted it: both were decided
// before the outcome was known, and both are only ever needless.)
func TestApplyFailureKeepsUnused(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{}, m)
	a := ts.dial(t)
	b := ts.dial(t)
	if _, st := a.commit(rec(0, "root")); st != 'O' {
		t.Fatalf("root: %q", st)
	}
	o := a.newOIDs(2)
	m.applyErr = errTest
	if _, st := a.commit(rec(o[0], "x"), rec(o[1], "y")); st != 'E' {
		t.Fatalf("apply failure: %q, want E", st)
	}
	m.applyErr = nil
	b.sync()
	if _, st := b.commit(rec(o[1], "stolen")); st != 'E' {
		t.Fatalf("b commits a's unused oid after a's refused commit: %q, want E", st)
	}
	if _, st := a.commit(rec(o[1], "y")); st != 'O' {
		t.Fatalf("a commits its own oid: %q", st)
	}
	// Committed now: no longer a's.
	if _, st := b.commit(rec(o[1], "b's update")); st != 'O' {
		t.Fatalf("b updates a committed oid: %q", st)
	}
}

// A commit whose durability wait is cut short by the shutdown timeout has
// an unknown outcome (the engine may still apply it): the connection is
// closed without a reply, never answered E.
func TestShutdownWaitNoFalseE(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{ShutdownTimeout: 100 * time.Millisecond}, m)
	a := ts.dial(t)
	if _, st := a.commit(rec(0, "root")); st != 'O' {
		t.Fatalf("root: %q", st)
	}
	m.waitDelay = time.Hour
	a.begin()
	a.send(u32(uint32(len(txnData(rec(0, "root2"))))), txnData(rec(0, "root2")))
	waitFor(t, 5*time.Second, "the commit waiting for durability", func() bool { return m.commits.Load() == 2 })
	go ts.srv.Close()
	a.expectClosed(10 * time.Second)
	ts.stop(t)
	if containsLog(ts, "rule=11") {
		t.Fatal("the cut-short wait was logged as a storage failure (E)")
	}
	if !containsLog(ts, "outcome unknown") {
		t.Fatal("no log line saying the outcome is unknown")
	}
}

// Fair commits (issue: hostile clients): however many connections send C
// and never send phase 2, a well-behaved client's commit completes within
// two leases, and loads are answered meanwhile. With a FIFO of full leases
// it would wait one lease per staller.
func TestStallersDoNotStarveCommits(t *testing.T) {
	const lease = 500 * time.Millisecond
	const stallers = 50
	ts := startServer(t, Config{CommitLease: lease, RequestTimeout: time.Minute}, newMemStore())
	honest, err := wire.Dial(ts.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer honest.Close()
	oids, err := honest.NewOIDs(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, st, err := honest.Commit([][]byte{rec(0, "root")}); err != nil || st != 'O' {
		t.Fatalf("root: %q %v", st, err)
	}
	for range stallers {
		s := ts.dialRaw(t)
		s.send([]byte{'C'}) // and nothing more
	}
	tok := ts.srv.Token()
	waitFor(t, 10*time.Second, "the stallers queued", func() bool { return tok.Waiting() == stallers-1 })

	loads := make(chan error, 1)
	go func() {
		lc, err := wire.Dial(ts.addr, 10*time.Second)
		if err != nil {
			loads <- err
			return
		}
		defer lc.Close()
		for range 20 {
			if st, _, err := lc.Load(0); err != nil || st != 'O' {
				loads <- fmt.Errorf("load during the stall: %q %v", st, err)
				return
			}
		}
		loads <- nil
	}()

	start := time.Now()
	_, st, err := honest.Commit([][]byte{rec(oids[1], "honest"), rec(0, "root", oids[1])})
	took := time.Since(start)
	if err != nil || st != 'O' {
		t.Fatalf("honest commit: %q %v", st, err)
	}
	if err := <-loads; err != nil {
		t.Fatal(err)
	}
	// Two leases, plus slack for -race on a loaded machine; FIFO: 25 s.
	if took > 2*lease+time.Second {
		t.Fatalf("honest commit behind %d stallers took %v (lease %v)", stallers, took, lease)
	}
	t.Logf("honest commit behind %d stallers: %v (lease %v)", stallers, took, lease)
}

// I7 counts runs as well as oids: a connection whose invalid set would
// hold more runs than MaxInvalidRuns is closed; one with many oids in few
// runs is not.
func TestInvalidRunsCap(t *testing.T) {
	ts := startServer(t, Config{MaxInvalidRuns: 50}, newMemStore())
	a := ts.dial(t)
	calm := ts.dial(t)
	victim := ts.dial(t)
	o := a.newOIDs(200)
	var recs [][]byte
	for _, x := range o[:150] {
		recs = append(recs, rec(x, "x"))
	}
	if _, st := a.commit(recs...); st != 'O' { // 150 oids, one run
		t.Fatal(st)
	}
	if inv := calm.sync(); len(inv) != 150 {
		t.Fatalf("calm told %d oids, want 150", len(inv))
	}
	// Two commits of 30 runs of one oid each, each within the cap alone.
	for _, start := range []int{0, 60} {
		recs = recs[:0]
		for i := start; i < start+60; i += 2 {
			recs = append(recs, rec(o[i], "y"))
		}
		if _, st := a.commit(recs...); st != 'O' {
			t.Fatal(st)
		}
	}
	// The victim never synced: the 60 oids fall in its one run of 150,
	// and it stays. Calm synced in between, so it now holds 60 runs:
	// over the cap.
	calm.expectClosed(5 * time.Second)
	if inv := victim.sync(); len(inv) != 150 {
		t.Fatalf("victim told %d oids, want 150", len(inv))
	}
	if !containsLog(ts, "max_runs=50") {
		t.Fatal("I7 by runs not logged")
	}
}

// A commit refused for the free-space reserve (E, rule 11) is decided when
// it is staged, before anything is announced: it invalidates nothing, frees
// none of the committer's oids and does not advance the sequence. (Other
// storage failures while applying stop the server: engine.ErrFailed.)
func TestNoSpaceRefusedWithoutSideEffects(t *testing.T) {
	for _, backend := range []string{"leveldb", "bdb"} {
		if backend == "bdb" && len(bdbKinds()) == 0 {
			continue
		}
		t.Run(backend, func(t *testing.T) {
			// The root first (its first commit is applied under the token:
			// a path of its own), then the reserve: more than any disk.
			dir := t.TempDir()
			opts := engine.Options{Create: true, Backend: backend, Logger: quietLogger()}
			db, err := engine.Open(context.Background(), dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			ts0 := startServer(t, Config{}, Engine(db))
			if _, st := ts0.dial(t).commit(rec(0, "root")); st != 'O' {
				t.Fatalf("root: %q", st)
			}
			ts0.srv.Close()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			opts.MinFreeSpace = 1 << 62
			db, err = engine.Open(context.Background(), dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			ts := startServer(t, Config{}, Engine(db))
			a := ts.dial(t)
			b := ts.dial(t)
			o := a.newOIDs(2)
			if o[0] == 0 {
				t.Fatalf("oids %v: the root was handed out again", o)
			}
			seq := ts.srv.Token().Seq()
			if _, st := a.commit(rec(o[0], "x"), rec(o[1], "y")); st != 'E' {
				t.Fatalf("commit over the free-space reserve: %q, want E", st)
			}
			if got := ts.srv.Token().Seq(); got != seq {
				t.Fatalf("sequence %d → %d", seq, got)
			}
			if inv := b.sync(); len(inv) != 0 {
				t.Fatalf("b told %v changed by a refused commit", inv)
			}
			// a's unused oids are still a's: b may not commit them (rule 7).
			if _, st := b.commit(rec(o[1], "stolen")); st != 'E' {
				t.Fatalf("b commits a's unused oid: %q, want E", st)
			}
			if inv := a.sync(); len(inv) != 0 {
				t.Fatalf("a told %v changed by b's refused commit", inv)
			}
		})
	}
}

// The invalid sets of all connections together stay within
// MaxInvalidMemory (16 bytes a run): each connection within its own caps,
// many idle ones together would otherwise hold MaxConnections × 4 MiB. A
// connection whose set would take the total over the budget is closed
// (I7); the others keep theirs, a sync empties one and gives its share
// back, and the total returns to zero once every connection is gone.
func TestInvalidMemoryBudget(t *testing.T) {
	ts := startServer(t, Config{MaxInvalidMemory: 100 * runBytes}, newMemStore())
	a := ts.dial(t)
	idle := []*client{ts.dial(t), ts.dial(t), ts.dial(t)}
	for _, c := range idle {
		c.sync()
	}
	o := a.newOIDs(200)
	var recs [][]byte
	for _, from := range []int{0, 40} { // two commits of 20 runs of one oid
		recs = recs[:0]
		for i := from; i < from+40; i += 2 {
			recs = append(recs, rec(o[i], "x"))
		}
		if _, st := a.commit(recs...); st != 'O' { // 3 × 20 runs ≤ 100: each fits alone
			t.Fatal(st)
		}
	}
	// 3 × 40 runs > 100: the third connection to get the second commit's
	// is closed (a single commit of 40 runs would be refused: rule 1).
	closed := 0
	for _, c := range idle {
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if inv, err := c.wc().Sync(); err != nil {
			closed++
		} else if len(inv) != 40 {
			t.Fatalf("a connection kept %d invalid oids, want 40", len(inv))
		}
	}
	if closed != 1 {
		t.Fatalf("%d connections closed, want 1 (the one that took the total over 100 runs)", closed)
	}
	if !containsLog(ts, "--max-invalid-memory") {
		t.Fatal("the closing is not logged naming --max-invalid-memory")
	}
	// The survivors hold 10 runs each, unsynced, when they close.
	recs = recs[:0]
	for i := 100; i < 120; i += 2 {
		recs = append(recs, rec(o[i], "y"))
	}
	if _, st := a.commit(recs...); st != 'O' {
		t.Fatal(st)
	}
	if n := ts.srv.invalidRuns.Load(); n != 20 {
		t.Fatalf("%d invalid runs counted, want 20 (10 in each of the 2 idle survivors)", n)
	}
	for _, c := range append(idle, a) {
		c.nc.Close()
	}
	waitFor(t, 10*time.Second, "every connection gone", func() bool { return ts.srv.NumConns() == 0 })
	if n := ts.srv.invalidRuns.Load(); n != 0 {
		t.Fatalf("%d invalid runs still counted with no connection left", n)
	}
}

// The unused sets of all connections (one ordered list of runs, 24 bytes
// a run) stay within MaxUnusedMemory. Interleaved allocations give a run
// each, and a commit of every other oid of an allocation splits its run:
// without a bound, 4,096 connections each allocating one oid at a time
// in turn, up to their own cap of 16,777,216 oids, would hold 268 million
// runs (6 GB). An allocation that would take the list over the budget
// closes its connection (its runs go back); a commit that fragments it
// over is answered, then its connection is closed.
func TestUnusedMemoryBudget(t *testing.T) {
	ts := startServer(t, Config{MaxUnusedMemory: 10 * ownedRunBytes}, newMemStore())
	root := ts.dial(t)
	if _, st := root.commit(rec(root.newOIDs(1)[0], "root")); st != 'O' {
		t.Fatal(st)
	}
	a, b := ts.dial(t), ts.dial(t)
	// 10 interleaved allocations fill the budget; the 11th is refused.
	for i := range 5 {
		for _, c := range []*client{a, b} {
			if _, err := c.wc().NewOIDs(1); err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
		}
	}
	if _, err := a.wc().NewOIDs(1); err == nil {
		t.Fatal("an allocation over --max-unused-memory was answered")
	}
	a.expectClosed(5 * time.Second)
	if !containsLog(ts, "--max-unused-memory") {
		t.Fatal("the refusal does not name --max-unused-memory")
	}
	// a's 5 runs go back once its connection has ended on the server: d
	// may then allocate 20 oids (one run, 6 in all); its commit of every
	// other one leaves 10 runs of d: 15 in all.
	waitFor(t, 10*time.Second, "a's unused runs given back", func() bool {
		ts.srv.allocMu.Lock()
		defer ts.srv.allocMu.Unlock()
		return len(ts.srv.owners.runs) == 5
	})
	d := ts.dial(t)
	oids := d.newOIDs(20)
	var recs [][]byte
	for i := 0; i < 20; i += 2 {
		recs = append(recs, rec(oids[i], "split"))
	}
	if _, st := d.commit(recs...); st != 'O' {
		t.Fatalf("the fragmenting commit: %q, want O (it is answered, then the connection closed)", st)
	}
	d.expectClosed(5 * time.Second)
	b.sync()
	if st, data := b.load(oids[0]); st != 'O' || !strings.Contains(string(data), "split") {
		t.Fatalf("the fragmenting commit's record: %q %q", st, data)
	}
	// b still allocates once d's runs are back: the list is within the
	// budget again.
	waitFor(t, 10*time.Second, "d's unused runs given back", func() bool {
		ts.srv.allocMu.Lock()
		defer ts.srv.allocMu.Unlock()
		return len(ts.srv.owners.runs) == 5
	})
	if _, err := b.wc().NewOIDs(1); err != nil {
		t.Fatalf("b's allocation after the closings: %v", err)
	}
}
