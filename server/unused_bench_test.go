package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// commitEveryOther allocates 2n oids on a new connection and commits a
// record on every other one, frames in descending order if desc; it
// returns how long the commit took.
func commitEveryOther(t *testing.T, ts *testServer, n int, desc bool) time.Duration {
	t.Helper()
	c, err := wire.Dial(ts.addr, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var oids []uint64
	for len(oids) < 2*n {
		o, err := c.NewOIDs(min(255, 2*n-len(oids)))
		if err != nil {
			t.Fatal(err)
		}
		oids = append(oids, o...)
	}
	recs := make([][]byte, 0, n)
	for i := 0; i < len(oids); i += 2 {
		recs = append(recs, rec(oids[i], "x"))
	}
	if desc {
		slices.Reverse(recs)
	}
	start := time.Now()
	_, st, err := c.Commit(recs)
	took := time.Since(start)
	if err != nil || st != 'O' {
		t.Fatalf("commit of %d records: %q %v", n, st, err)
	}
	return took
}

// Unallocated-oid sets (§9): a commit of every other oid of a connection's
// unused set costs about the same in descending frame order as in
// ascending order (a slice insertion per oid made descending quadratic),
// and it does not hold up other connections' allocations.
func TestUnusedRemovalNotQuadratic(t *testing.T) {
	n := 200_000
	if raceEnabled || testing.Short() {
		n = 100_000
	}
	ts := startServer(t, Config{RequestTimeout: time.Minute, WriteTimeout: time.Minute}, newQuickStore())
	asc := commitEveryOther(t, ts, n, false)

	// Another client allocates throughout the descending commit.
	stop := make(chan struct{})
	var worst time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := wire.Dial(ts.addr, time.Minute)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := time.Now()
			if _, err := c.NewOIDs(1); err != nil {
				t.Error(err)
				return
			}
			worst = max(worst, time.Since(s))
			if _, err := c.Sync(); err != nil { // keep its invalid set small
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	desc := commitEveryOther(t, ts, n, true)
	close(stop)
	wg.Wait()
	t.Logf("%d records on every other oid: ascending %v, descending %v; worst N meanwhile %v", n, asc, desc, worst)
	if desc > 3*asc+500*time.Millisecond {
		t.Fatalf("descending commit %v, ascending %v: not within 3x", desc, asc)
	}
	// The old code blocked N for the whole removal (25 s for 200k oids).
	// End to end, N also waits for the scheduler of a loaded machine, so
	// the bound here is a regression guard (500 ms; 2 s under the race
	// detector); the 100 ms bound of the issue applies to the time
	// allocMu is held, tested directly in TestRemoveSortedHoldTime. (The
	// storage here allocates without waiting for commits: the engine's
	// durable oid reservation waits for a running apply, a separate
	// matter.)
	bound := 500 * time.Millisecond
	if raceEnabled {
		bound = 2 * time.Second
	}
	if worst > bound {
		t.Fatalf("another client's N waited %v during the commit (bound %v)", worst, bound)
	}
}

// The bookkeeping a commit of 200k oids does under allocMu (rules 6 and 7,
// then the removal from the unused set) takes well under the 100 ms the
// issue allows others' N/M to wait, whatever the frame order.
func TestRemoveSortedHoldTime(t *testing.T) {
	const n = 200_000
	c, other := &conn{id: 1}, &conn{id: 2}
	var o ownerRuns
	o.add(10, 10+2*n, c)
	o.add(10+2*n, 10+2*n+5, other)
	sorted := make([]uint64, 0, n)
	for x := uint64(10); x < 10+2*n; x += 2 {
		sorted = append(sorted, x)
	}
	start := time.Now()
	for _, x := range sorted {
		if o.owner(x) != c {
			t.Fatalf("owner(%d)", x)
		}
	}
	taken := o.removeSorted(sorted, c)
	took := time.Since(start)
	if runsLen(taken) != n || len(o.runs) != n+1 {
		t.Fatalf("took %d oids, %d runs left", runsLen(taken), len(o.runs))
	}
	bound := 100 * time.Millisecond
	if raceEnabled {
		bound = time.Second // the race detector instruments every access
	}
	t.Logf("rules 6-7 and removal of %d oids: %v", n, took)
	if took > bound {
		t.Fatalf("%v under allocMu for %d oids (bound %v)", took, n, bound)
	}
}

// quickStore is a minimal in-memory Storage whose allocations never wait
// for a commit (memStore holds one lock through Stage), so that a test
// measures what the server itself makes N wait for.
type quickStore struct {
	cursor atomic.Uint64
	mu     sync.Mutex
	recs   map[uint64][]byte
}

func newQuickStore() *quickStore { return &quickStore{recs: map[uint64][]byte{}} }

func (q *quickStore) Load(oid uint64) ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, ok := q.recs[oid]
	if !ok {
		return nil, fmt.Errorf("quick: oid %d: %w", oid, ErrNoRecord)
	}
	return r, nil
}

func (q *quickStore) AllocOIDs(n int) (uint64, error) {
	return q.cursor.Add(uint64(n)) - uint64(n), nil
}

func (q *quickStore) AllocCursor() uint64 { return q.cursor.Load() }

func (q *quickStore) Stage(_ context.Context, recs [][]byte) (Pending, error) {
	for _, r := range recs {
		p, err := record.Parse(r)
		if err != nil {
			return nil, err
		}
		for _, ref := range p.RefSet() {
			if _, err := q.Load(ref); err != nil {
				return nil, fmt.Errorf("quick: %w", ErrDangling)
			}
		}
	}
	q.mu.Lock()
	for _, r := range recs {
		q.recs[record.OID(r)] = r
	}
	q.mu.Unlock()
	return quickPending{}, nil
}

type quickPending struct{}

func (quickPending) Wait(context.Context) error { return nil }

func (q *quickStore) Pack() bool { return false }

func (q *quickStore) ReadOnly() bool { return false }
