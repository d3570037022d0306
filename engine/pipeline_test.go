package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

func mustStage(t testing.TB, db *DB, recs ...[]byte) *Pending {
	t.Helper()
	p, err := db.Stage(context.Background(), recs)
	if err != nil {
		t.Fatalf("stage: %v", err)
	}
	return p
}

// TestStageBatch: commits staged one after another are applied by one run,
// in staging order; a dangling commit among them is refused by Stage and
// changes nothing while its neighbours are applied.
func TestStageBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustAlloc(t, db, 64)
		mustCommit(t, db, rec(0, 1), rec(1))
		runs := db.pipe.runs.Flushes()

		a := mustStage(t, db, rec(2), record.Build(1, []byte("v1"), 2))
		// 40: allocated, never stored. Rule 10 is decided by Stage: the
		// commit is refused before it is queued.
		if _, err := db.Stage(context.Background(), [][]byte{rec(3, 40)}); !errors.Is(err, ErrDangling) || !bytes.Contains([]byte(err.Error()), []byte("oid 40")) {
			t.Fatalf("dangling commit: %v, want ErrDangling naming oid 40", err)
		}
		b := mustStage(t, db, record.Build(1, []byte("v2"), 2), rec(4))
		c := mustStage(t, db, rec(0, 1, 4))
		if n := db.pipe.staged.Load(); n != 4 {
			t.Fatalf("in flight %d oids, want 4 (1 2 4 0)", n)
		}
		if err := c.Wait(context.Background()); err != nil {
			t.Fatalf("wait c: %v", err)
		}
		for _, p := range []*Pending{a, b} {
			if err := p.Wait(context.Background()); err != nil {
				t.Fatalf("wait: %v", err)
			}
		}
		if got := db.pipe.runs.Flushes() - runs; got != 1 {
			t.Fatalf("%d apply runs for 3 staged commits, want 1", got)
		}
		if got, _ := db.Load(1); !bytes.Equal(got, record.Build(1, []byte("v2"), 2)) {
			t.Fatalf("oid 1 = %q, want the later commit's record", got)
		}
		if _, err := db.Load(3); !errors.Is(err, ErrNotFound) {
			t.Fatalf("oid 3 of the refused commit: %v, want not found", err)
		}
		if n, _ := db.Size(); n != 4 {
			t.Fatalf("size %d, want 4 (0 1 2 4)", n)
		}
		if db.pipe.staged.Load() != 0 || len(db.pipe.inflight) != 0 {
			t.Fatalf("in-flight set not empty after the run: %v", db.pipe.inflight)
		}
		verifyInvariants(t, db)
	})
}

// TestStageLoadWaits: Load of an oid a queued commit stores runs the queue
// itself (nobody else waits) and sees the staged record; an oid no queued
// commit stores is read without applying anything.
func TestStageLoadWaits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustAlloc(t, db, 8)
		mustCommit(t, db, rec(0, 1), rec(1))
		runs := db.pipe.runs.Flushes()
		p := mustStage(t, db, record.Build(1, []byte("new")))
		if got, err := db.Load(0); err != nil || !bytes.Equal(got, rec(0, 1)) {
			t.Fatalf("load 0: %q %v", got, err)
		}
		if db.pipe.runs.Flushes() != runs {
			t.Fatal("load of an oid not staged ran the queue")
		}
		got, err := db.Load(1)
		if err != nil || !bytes.Equal(got, record.Build(1, []byte("new"))) {
			t.Fatalf("load 1 = %q, %v; want the staged record", got, err)
		}
		select {
		case <-p.applied:
		default:
			t.Fatal("load returned before the staged commit was applied")
		}
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStageClose: Close applies what is still queued; it is there after
// reopening. Stage after Close is refused.
func TestStageClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db, err := Open(context.Background(), dir, testOpts(kind))
		if err != nil {
			t.Fatal(err)
		}
		mustAlloc(t, db, 8)
		mustStage(t, db, rec(0, 1), rec(1))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Stage(context.Background(), [][]byte{rec(1)}); !errors.Is(err, ErrClosed) {
			t.Fatalf("stage after close: %v", err)
		}
		opts := testOpts(kind)
		opts.Create = false
		db = openTest(t, dir, opts)
		if got, err := db.Load(1); err != nil || !bytes.Equal(got, rec(1)) {
			t.Fatalf("after reopen: %q %v", got, err)
		}
		verifyInvariants(t, db)
	})
}

// TestStageConcurrent: committers stage in turn (a token, as the server
// holds) and wait concurrently, publishing each version once its Wait
// returned, while readers load the same oids through the record cache.
// Every load returns a version no older than the last one the reader saw
// (monotonic) and no older than the last acknowledged before the load
// began (the cache never serves a record an acknowledged commit replaced);
// at the end each oid holds its last staged version and the invariants
// hold.
func TestStageConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		opts := testOpts(kind)
		opts.RecordCache = 64 << 10
		db := openTest(t, t.TempDir(), opts)
		const writers, rounds, oids = 6, 60, 8
		mustAlloc(t, db, oids+1)
		root := []uint64{}
		var initial [][]byte
		for i := uint64(1); i <= oids; i++ {
			root = append(root, i)
			initial = append(initial, record.Build(i, []byte("0")))
		}
		mustCommit(t, db, append(initial, rec(0, root...))...)
		var token sync.Mutex
		version := make([]int64, oids+1) // last staged version per oid; owned by token
		var acked [oids + 1]atomic.Int64
		var wg sync.WaitGroup
		errc := make(chan error, writers*rounds+64)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					oid := uint64(1 + (w+r)%oids)
					token.Lock()
					version[oid]++
					v := version[oid]
					p, err := db.Stage(context.Background(), [][]byte{record.Build(oid, fmt.Appendf(nil, "%d", v))})
					token.Unlock()
					if err == nil {
						err = p.Wait(context.Background())
					}
					if err != nil {
						errc <- err
						return
					}
					for { // publish v unless a later version already is
						cur := acked[oid].Load()
						if cur >= v || acked[oid].CompareAndSwap(cur, v) {
							break
						}
					}
				}
			}()
		}
		stop := make(chan struct{})
		var rg sync.WaitGroup
		for r := 0; r < 3; r++ {
			rg.Add(1)
			go func() {
				defer rg.Done()
				last := make([]int64, oids+1)
				for {
					select {
					case <-stop:
						return
					default:
					}
					for oid := uint64(1); oid <= oids; oid++ {
						floor := acked[oid].Load()
						got, err := db.Load(oid)
						if err != nil {
							errc <- err
							return
						}
						r, _ := record.Parse(got)
						var v int64
						fmt.Sscan(string(r.Data), &v)
						switch {
						case v < last[oid]:
							errc <- fmt.Errorf("oid %d went back from version %d to %d", oid, last[oid], v)
							return
						case v < floor:
							errc <- fmt.Errorf("oid %d: loaded version %d after version %d was acknowledged", oid, v, floor)
							return
						}
						last[oid] = v
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		rg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		for oid := uint64(1); oid <= oids; oid++ {
			got, _ := db.Load(oid)
			if want := record.Build(oid, fmt.Appendf(nil, "%d", version[oid])); !bytes.Equal(got, want) {
				t.Fatalf("oid %d = %q, want the last staged %q", oid, got, want)
			}
		}
		if db.cache.hits.Load() == 0 {
			t.Fatal("the readers never hit the record cache: the test proves nothing about it")
		}
		verifyInvariants(t, db)
	})
}
