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
func commitEveryOther(t testing.TB, ts *testServer, n int, desc bool) time.Duration {
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

// unusedRemoval commits every other oid of n, in ascending and then in
// descending frame order, while another client allocates one oid at a
// time throughout the descending commit. It returns the two commit times
// and the longest N of the other client.
func unusedRemoval(t testing.TB, n int) (asc, desc, worst time.Duration) {
	t.Helper()
	ts := startServer(t, Config{RequestTimeout: time.Minute, WriteTimeout: time.Minute}, newQuickStore())
	asc = commitEveryOther(t, ts, n, false)
	stop := make(chan struct{})
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
			time.Sleep(time.Millisecond) // pacing, not waiting for anything
		}
	}()
	desc = commitEveryOther(t, ts, n, true)
	close(stop)
	wg.Wait()
	ts.stop(t)
	return asc, desc, worst
}

// Unallocated-oid sets (§9): a commit of every other oid of a connection's
// unused set succeeds in either frame order while another connection
// allocates. How fast (descending about as fast as ascending, where a
// slice insertion per oid made it quadratic; others' N not held up) is
// BenchmarkUnusedRemoval's; the bound here only catches a hang (the old
// code blocked N for 25 s on 200k oids).
func TestUnusedRemovalEveryOther(t *testing.T) {
	n := 200_000
	if raceEnabled || testing.Short() {
		n = 100_000
	}
	asc, desc, worst := unusedRemoval(t, n)
	t.Logf("%d records on every other oid: ascending %v, descending %v; worst N meanwhile %v", n, asc, desc, worst)
	if worst > 30*time.Second {
		t.Fatalf("another client's N waited %v during the commit", worst)
	}
}

// BenchmarkUnusedRemoval reports the commit of every other oid of 200k in
// both frame orders (desc/asc near 1: not quadratic) and the longest N of
// another client meanwhile (the issue allows 100 ms).
func BenchmarkUnusedRemoval(b *testing.B) {
	const n = 200_000
	var asc, desc, worst time.Duration
	for range b.N {
		a, d, w := unusedRemoval(b, n)
		asc, desc, worst = asc+a, desc+d, max(worst, w)
	}
	b.ReportMetric(float64(asc.Milliseconds())/float64(b.N), "asc-ms")
	b.ReportMetric(float64(desc.Milliseconds())/float64(b.N), "desc-ms")
	b.ReportMetric(float64(desc)/float64(asc), "desc/asc")
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-N-ms")
}

// everyOtherRuns is an ownerRuns holding 2n oids of c (and five of
// another connection after them) and every other one of c's oids.
func everyOtherRuns(n int) (o *ownerRuns, c *conn, sorted []uint64) {
	c, other := &conn{id: 1}, &conn{id: 2}
	o = &ownerRuns{}
	o.add(10, 10+uint64(2*n), c)
	o.add(10+uint64(2*n), 10+uint64(2*n)+5, other)
	sorted = make([]uint64, 0, n)
	for x := uint64(10); x < 10+uint64(2*n); x += 2 {
		sorted = append(sorted, x)
	}
	return o, c, sorted
}

// The bookkeeping a commit of 200k oids does under allocMu (rules 6 and 7,
// then the removal from the unused set) finds the owner of every oid and
// leaves one run per gap. Its time (the issue allows others' N/M to wait
// 100 ms) is BenchmarkRemoveSorted's.
func TestRemoveSortedEveryOther(t *testing.T) {
	const n = 200_000
	o, c, sorted := everyOtherRuns(n)
	for _, x := range sorted {
		if o.owner(x) != c {
			t.Fatalf("owner(%d)", x)
		}
	}
	taken := o.removeSorted(sorted, c)
	if runsLen(taken) != n || len(o.runs) != n+1 {
		t.Fatalf("took %d oids, %d runs left", runsLen(taken), len(o.runs))
	}
}

// BenchmarkRemoveSorted: what a commit of every other oid of 200k holds
// allocMu for (rules 6-7 and the removal), in ms per commit.
func BenchmarkRemoveSorted(b *testing.B) {
	const n = 200_000
	var took time.Duration
	for range b.N {
		o, c, sorted := everyOtherRuns(n)
		start := time.Now()
		for _, x := range sorted {
			if o.owner(x) != c {
				b.Fatalf("owner(%d)", x)
			}
		}
		o.removeSorted(sorted, c)
		took += time.Since(start)
	}
	b.ReportMetric(float64(took.Microseconds())/1000/float64(b.N), "hold-ms")
}

// quickStore is a minimal in-memory Storage whose allocations never wait
// for a commit (memStore holds one lock through Commit), so that a test
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

func (q *quickStore) Commit(_ context.Context, recs [][]byte) (Pending, error) {
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
