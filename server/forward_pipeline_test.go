package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
)

// fakeReplica is a replica's Storage for server tests: its records are an
// engine database's (so loads wait for held oids as on a real replica,
// engine.DB.HoldForwarded), its master is a test server over a memStore,
// and replication is the test's: WaitReplicated waits for a value on gate,
// then copies the master's new records into the database and invalidates
// them for the replica's clients, as the change follower does.
type fakeReplica struct {
	*engineStore
	master   *memStore
	addr     atomic.Pointer[string] // the master's Durus address (the test moves it: a failover)
	srv      *Server                // the replica's server (set once started)
	gate     chan struct{}          // one value lets one WaitReplicated through
	waiting  atomic.Int32           // WaitReplicated calls now waiting
	maxWait  atomic.Int32           // most calls ever waiting at once
	changes  atomic.Uint64          // changes "followed"
	mu       sync.Mutex             // serialises replicate
	replayed map[uint64][]byte
}

func newFakeReplica(t *testing.T, master *memStore, addr string) *fakeReplica {
	f := &fakeReplica{engineStore: openEngine(t, "leveldb", engine.Options{}), master: master,
		gate: make(chan struct{}, 16), replayed: map[uint64][]byte{}}
	f.addr.Store(&addr)
	return f
}

func (f *fakeReplica) MasterAddr() (string, bool) { return *f.addr.Load(), true }

func (f *fakeReplica) WaitReplicated(ctx context.Context, tok engine.Token, timeout time.Duration) error {
	n := f.waiting.Add(1)
	for m := f.maxWait.Load(); n > m && !f.maxWait.CompareAndSwap(m, n); m = f.maxWait.Load() {
	}
	defer f.waiting.Add(-1)
	select {
	case <-f.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return f.replicate()
}

// replicate applies the master's records not yet applied here and
// invalidates them for the replica's clients.
func (f *fakeReplica) replicate() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.master.mu.Lock()
	var recs [][]byte
	var oids []uint64
	for oid, r := range f.master.recs {
		if !bytes.Equal(f.replayed[oid], r) {
			f.replayed[oid] = slices.Clone(r)
			recs = append(recs, slices.Clone(r))
			oids = append(oids, oid)
		}
	}
	f.master.mu.Unlock()
	if len(recs) == 0 {
		return nil
	}
	for _, o := range oids { // the master handed them out: so here
		if c := f.db.AllocCursor(); o >= c {
			if _, err := f.db.AllocOIDs(int(o + 1 - c)); err != nil {
				return err
			}
		}
	}
	p, err := f.db.Stage(context.Background(), recs)
	if err == nil {
		err = p.Wait(context.Background())
	}
	if err != nil {
		return err
	}
	f.changes.Add(1)
	if f.srv != nil {
		f.srv.InvalidateReplicated(oids)
	}
	return nil
}

func (f *fakeReplica) ChangesStarted() uint64                                  { return f.changes.Load() }
func (f *fakeReplica) ChangesReported() uint64                                 { return f.changes.Load() }
func (f *fakeReplica) FollowerMark() uint64                                    { return 0 }
func (f *fakeReplica) SyncFollowerFrom(context.Context, uint64, time.Duration) {}
func (f *fakeReplica) HoldForwarded(oids []uint64) func()                      { return f.db.HoldForwarded(oids) }

// startFakeGroup starts a master (a memStore with a stored root) and a
// replica server forwarding to it.
func startFakeGroup(t *testing.T) (*testServer, *fakeReplica) {
	t.Helper()
	return startFakeGroupCfg(t, Config{})
}

// startFakeGroupCfg is startFakeGroup with the replica's server configured
// by cfg.
func startFakeGroupCfg(t *testing.T, cfg Config) (*testServer, *fakeReplica) {
	t.Helper()
	mst := newMemStore()
	mts := startServer(t, Config{}, mst)
	local := mts.dial(t)
	if root := local.newOIDs(1)[0]; root != 0 {
		t.Fatalf("first oid %d", root)
	}
	if _, st := local.commit(rec(0, "root")); st != 'O' {
		t.Fatalf("root commit on the master: %q", st)
	}
	f := newFakeReplica(t, mst, mts.addr)
	if err := f.replicate(); err != nil {
		t.Fatal(err)
	}
	rts := startServer(t, cfg, f)
	f.srv = rts.srv
	return rts, f
}

// TestForwardPipelined: on a replica, a forwarded commit passes the token
// on once announced, so a second client's phase 1 is answered, and its
// own commit forwarded, while the first still waits to be applied here
// (two forwards in flight at once); that phase 1 carries the first
// commit's oids; a load of an oid in flight waits and returns the new
// record, never the one before.
func TestForwardPipelined(t *testing.T) {
	rts, f := startFakeGroup(t)
	defer func() {
		if t.Failed() {
			t.Log(rts.logs.String())
		}
	}()
	x, y, z := rts.dial(t), rts.dial(t), rts.dial(t)
	o := x.newOIDs(1)[0]
	mine := y.newOIDs(1)[0]
	f.gate <- struct{}{}
	if _, st := x.commit(rec(o, "v1")); st != 'O' {
		t.Fatalf("first forwarded commit: %q", st)
	}
	y.sync()
	z.sync()
	if st, got := z.load(o); st != 'O' || !bytes.Equal(got, rec(o, "v1")) {
		t.Fatalf("load after the first commit: %q %q", st, got)
	}

	// x's second commit: answered by the master, not yet applied here.
	x.begin() // the fake's tokens name no change: x may be told of its own commit
	xdata := txnData(rec(o, "v2"))
	x.send(u32(uint32(len(xdata))), xdata)
	waitFor(t, 10*time.Second, "x's forward to wait for replication", func() bool { return f.waiting.Load() == 1 })

	// y's phase 1 is answered with o invalid, and y's commit travels too.
	// (The wire client gives up after 10 s: the token held across the
	// forward would keep y waiting until x's commit is applied here.)
	inv, err := y.wc().Begin()
	if err != nil {
		t.Fatalf("y's phase 1 not answered while x's forwarded commit is in flight: %v", err)
	}
	if !slices.Equal(inv, []uint64{o}) {
		t.Fatalf("y's phase 1 after x's forward was announced: %v, want [%d]", inv, o)
	}
	// z is told o is stale, and a load of o then waits until x's commit
	// is applied here.
	if inv := z.sync(); !slices.Equal(inv, []uint64{o}) {
		t.Fatalf("z's sync while x's commit travels: %v, want [%d]", inv, o)
	}
	z.send([]byte{'L'}, u64(o))
	z.expectSilence(200 * time.Millisecond)

	ydata := txnData(rec(mine, "y"))
	y.send(u32(uint32(len(ydata))), ydata)
	waitFor(t, 10*time.Second, "both forwards to wait for replication", func() bool { return f.waiting.Load() == 2 })

	f.gate <- struct{}{}
	f.gate <- struct{}{}
	x.status(statusOK)
	y.status(statusOK)
	if st, got := z.loadResponse(); st != 'O' || !bytes.Equal(got, rec(o, "v2")) {
		t.Fatalf("load of an oid in flight: %q %q, want the new record", st, got)
	}
	if m := f.maxWait.Load(); m != 2 {
		t.Fatalf("forwards waiting at once: %d, want 2", m)
	}
	waitFor(t, 10*time.Second, "both forwards' holds released", func() bool { return f.db.ForwardsHeld() == 0 })
}

// startHungMaster listens on 127.0.0.1 as a master that answers the
// version handshake and then nothing (a master stopped with SIGSTOP, as
// far as a replica can tell); it returns its address.
func startHungMaster(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				var v [5]byte
				if _, err := io.ReadFull(c, v[:]); err != nil {
					return
				}
				c.Write([]byte{0, 0, 0, 1})
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestForwardAbandonedWhenMasterChanges: a commit forwarded to a master
// that stopped answering is abandoned as soon as this replica knows
// another master (a failover), not after forwardTimeout: its client's
// connection is closed without a reply (the outcome is unknown), its
// oids are released, and a load of them is answered at once. (Before,
// the new master's loads of the root waited 60 s for a forward to the
// stopped one.)
func TestForwardAbandonedWhenMasterChanges(t *testing.T) {
	rts, f := startFakeGroup(t)
	defer func() {
		if t.Failed() {
			t.Log(rts.logs.String())
		}
	}()
	x, z := rts.dial(t), rts.dial(t)
	o := x.newOIDs(1)[0] // from the live master
	live := *f.addr.Load()
	hung := startHungMaster(t)
	f.addr.Store(&hung)
	xdata := txnData(rec(o, "v1"), rec(0, "root v2"))
	x.begin()
	x.send(u32(uint32(len(xdata))), xdata)
	waitFor(t, 10*time.Second, "x's forward to hold its oids", func() bool { return f.db.ForwardsHeld() > 0 })
	z.sync()
	z.send([]byte{'L'}, u64(0))
	z.expectSilence(300 * time.Millisecond) // the root waits for the forward

	f.addr.Store(&live) // elected elsewhere
	start := time.Now()
	x.expectClosed(5 * time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("forward to the old master abandoned after %v", d)
	}
	if st, got := z.loadResponse(); st != 'O' || !bytes.Equal(got, rec(0, "root")) {
		t.Fatalf("load of the root once the forward was abandoned: %q %q", st, got)
	}
	waitFor(t, 5*time.Second, "the forward's hold released", func() bool { return f.db.ForwardsHeld() == 0 })
	// The watcher logs after it has closed the forward's connection: on a
	// loaded machine the line may follow the hold's release.
	waitFor(t, 5*time.Second, "the abandoned forward logged", func() bool {
		return strings.Contains(rts.logs.String(), "abandoned")
	})
}
