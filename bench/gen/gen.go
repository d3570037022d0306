// Package gen is a raw Durus protocol load generator: Measure drives
// N connections in one of four modes and reports requests per second and
// latency percentiles, over internal/wire (the repository's one raw
// protocol client). It measures the server rather than a client library
// and works against any Durus server (durusbdb serve, Durus's own
// `durus -s`, bench/trivial). bench/suite and bench/loadgen both use it.
//
// The request loops avoid allocations and deadlines, so that the generator
// is not the bottleneck when it is compared against a trivial server.
package gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/internal/wire"
)

// Dial connects to addr (host:port, a unix socket path starting with "/"
// or ".", or "@name" for a Linux abstract socket; see wire.Dial) and sends
// V 1. Only the connect and the V exchange have a timeout (5 s); later
// requests have none, so the hot path stays free of deadline bookkeeping.
func Dial(addr string) (*wire.Conn, error) {
	c, err := wire.Dial(addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if err := c.Version(); err != nil {
		c.NetConn().Close()
		return nil, fmt.Errorf("gen: V reply from %s: %w", addr, err)
	}
	c.Timeout = 0
	c.NetConn().SetDeadline(time.Time{})
	return c, nil
}

// AppendFrame appends to b one commit frame (int4 length, oid, record) for
// a record of oid with size data bytes ('a'…'z' repeated) and refs, the
// unit wire.Conn.CommitData's data is made of. It builds the record in
// place, without allocating.
func AppendFrame(b []byte, oid uint64, size int, refs []uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(8+12+size+8*len(refs)))
	b = binary.BigEndian.AppendUint64(b, oid)
	b = binary.BigEndian.AppendUint64(b, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	for i := range size {
		b = append(b, byte('a'+i%26))
	}
	for _, r := range refs {
		b = binary.BigEndian.AppendUint64(b, r)
	}
	return b
}

// Populate stores n records of size data bytes and makes the root (oid 0,
// overwritten) refer to them and to keep, so that no collector removes
// them. It returns the new oids, for PickFrom.
func Populate(addr string, n, size int, keep []uint64) ([]uint64, error) {
	c, err := Dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	oids, err := c.Alloc(n)
	if err != nil {
		return nil, err
	}
	batch := max(1, min(5000, (8<<20)/(size+32)))
	var data []byte
	for i := 0; i < len(oids); i += batch {
		data = data[:0]
		for _, oid := range oids[i:min(len(oids), i+batch)] {
			data = AppendFrame(data, oid, size, nil)
		}
		if st, err := c.CommitData(data); err != nil || st != 'O' {
			return nil, fmt.Errorf("populate commit: status %q, %v", st, err)
		}
	}
	refs := append(slices.Clone(keep), oids...)
	if st, err := c.CommitData(AppendFrame(nil, 0, 16, refs)); err != nil || st != 'O' {
		return nil, fmt.Errorf("populate root commit: status %q, %v", st, err)
	}
	return oids, nil
}

// Spec describes one measured run of the generator.
type Spec struct {
	Addr string // server address, as for Dial
	// Mode is loads (one L of a picked oid per request), bulk (one B of
	// Bulk picked oids), commits (one new Size-byte record per commit,
	// oids allocated with M), updates (one Size-byte update per commit of
	// one of the connection's own Objects records, which it stores first;
	// each connection writes only its own oids, so no commit conflicts)
	// or bigcommit (Records new records per commit).
	Mode     string
	Conns    int                         // connections, one goroutine each
	Warmup   time.Duration               // run but not counted before measuring
	Duration time.Duration               // measured time (longer while fewer than MinOps requests completed)
	Pick     func(rng *rand.Rand) uint64 // oid to load (loads, bulk): PickFrom, PickBelow
	Bulk     int                         // oids per B request (bulk)
	Records  int                         // records per commit (bigcommit)
	Size     int                         // data bytes per committed record (commits, bigcommit)
	MinOps   int64                       // measure at least this many requests (bounded by 2 min more)
	Objects  int                         // records each connection updates (updates; default 16)
	// UpdateOIDs, if not empty, are the existing records the updates mode
	// rewrites instead of storing its own: connection i takes every
	// Conns-th oid from index i. They must have no references (a leaf of
	// a tree), as the update stores none.
	UpdateOIDs []uint64
	// Stop, if not nil, ends the measured time early when it is closed
	// (e.g. when a collection the figure is taken during has finished).
	Stop <-chan struct{}
	// Slow, if above zero, keeps the start time of every counted request
	// that took longer (Result.Slow, at most maxSlow per connection), so
	// that stalls can be matched with what the server did at that moment.
	Slow time.Duration
}

// maxSlow bounds the slow requests Result.Slow keeps per connection.
const maxSlow = 10000

// SlowOp is a request that took longer than Spec.Slow.
type SlowOp struct {
	Start time.Time
	Took  time.Duration
}

// Result is what a run measured: counts over the measured time and the
// latency percentiles of the requests counted.
type Result struct {
	Ops      int64 // requests or commits completed while measuring
	Units    int64 // oids loaded (bulk) or records committed (bigcommit); Ops otherwise
	Elapsed  time.Duration
	P50, P99 time.Duration
	Max      time.Duration
	Slow     []SlowOp // requests slower than Spec.Slow, in start order
}

// OpsPerSec is requests (or commits) per second over the measured time.
func (r Result) OpsPerSec() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// UnitsPerSec is oids or records moved per second, the figure of the bulk
// and bigcommit modes.
func (r Result) UnitsPerSec() float64 { return float64(r.Units) / r.Elapsed.Seconds() }

// step is one request of a worker; it returns the units it moved.
type step func(c *wire.Conn, rng *rand.Rand) (int64, error)

// newStep checks spec and returns a maker of per-connection request
// functions for spec.Mode; each keeps its own buffers.
func newStep(spec Spec) (func() step, error) {
	if spec.Conns < 1 {
		return nil, fmt.Errorf("%s run: %d connections", spec.Mode, spec.Conns)
	}
	if (spec.Mode == "loads" || spec.Mode == "bulk") && spec.Pick == nil {
		return nil, fmt.Errorf("%s run: no oids to pick from (Spec.Pick is nil)", spec.Mode)
	}
	switch spec.Mode {
	case "loads":
		return func() step { return loadStep(spec) }, nil
	case "bulk":
		if spec.Bulk < 1 {
			return nil, fmt.Errorf("bulk run: %d oids per request", spec.Bulk)
		}
		return func() step { return bulkStep(spec) }, nil
	case "commits":
		return func() step { return commitStep(spec) }, nil
	case "updates":
		return updatesStep(spec)
	case "bigcommit":
		if spec.Records < 1 {
			return nil, fmt.Errorf("bigcommit run: %d records per commit", spec.Records)
		}
		return func() step { return bigCommitStep(spec) }, nil
	}
	return nil, fmt.Errorf("unknown mode %q", spec.Mode)
}

// loadStep: one L of a picked oid.
func loadStep(spec Spec) step {
	return func(c *wire.Conn, rng *rand.Rand) (int64, error) {
		oid := spec.Pick(rng)
		st, err := c.LoadStatus(oid)
		if err == nil && st != 'O' {
			err = fmt.Errorf("load of oid %d: status %q", oid, st)
		}
		return 1, err
	}
}

// bulkStep: one B of spec.Bulk picked oids.
func bulkStep(spec Spec) step {
	req := make([]uint64, spec.Bulk)
	return func(c *wire.Conn, rng *rand.Rand) (int64, error) {
		for i := range req {
			req[i] = spec.Pick(rng)
		}
		if err := c.SendBulk(req); err != nil {
			return 0, err
		}
		for range spec.Bulk {
			st, err := c.SkipLoad()
			if err != nil {
				return 0, err
			}
			if st != 'O' {
				return 0, fmt.Errorf("bulk status %q", st)
			}
		}
		return int64(spec.Bulk), nil
	}
}

// commitStep: one commit of one new spec.Size-byte record, its oid from a
// pool refilled with M.
func commitStep(spec Spec) step {
	var pool []uint64
	var data []byte
	return func(c *wire.Conn, rng *rand.Rand) (int64, error) {
		if len(pool) == 0 {
			p, err := c.Alloc(32)
			if err != nil {
				return 0, err
			}
			pool = p
		}
		oid := pool[0]
		pool = pool[1:]
		data = AppendFrame(data[:0], oid, spec.Size, nil)
		st, err := c.CommitData(data)
		if err == nil && st != 'O' {
			err = fmt.Errorf("commit status %q", st)
		}
		return 1, err
	}
}

// bigCommitStep: one commit of spec.Records new records.
func bigCommitStep(spec Spec) step {
	var data []byte
	return func(c *wire.Conn, rng *rand.Rand) (int64, error) {
		oids, err := c.Alloc(spec.Records)
		if err != nil {
			return 0, err
		}
		data = data[:0]
		for _, oid := range oids {
			data = AppendFrame(data, oid, spec.Size, nil)
		}
		st, err := c.CommitData(data)
		if err == nil && st != 'O' {
			err = fmt.Errorf("commit status %q", st)
		}
		return int64(spec.Records), err
	}
}

// Measure runs spec: spec.Conns connections loop on their request, the
// first spec.Warmup is not counted, then spec.Duration is. A request is
// counted only if it started and ended while measuring. A watchdog closes
// every connection if the run overruns by 60 s, so a stuck server cannot
// hang the caller. It fails if no request completed.
func Measure(spec Spec) (Result, error) {
	mk, err := newStep(spec)
	if err != nil {
		return Result{}, err
	}
	conns := make([]*wire.Conn, 0, spec.Conns)
	defer func() {
		for _, c := range conns {
			c.NetConn().Close()
		}
	}()
	for range spec.Conns {
		c, err := Dial(spec.Addr)
		if err != nil {
			return Result{}, err
		}
		conns = append(conns, c)
	}
	r := &run{slow: spec.Slow}
	var wg sync.WaitGroup
	for i, c := range conns {
		w := mk()
		wg.Add(1)
		go func() { defer wg.Done(); r.work(i, c, w) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	sleepUnless(spec.Warmup, done)
	r.measuring.Store(true)
	start := time.Now()
	sleepUnless(spec.Duration, orStop(done, spec.Stop))
	for end := time.Now().Add(2 * time.Minute); r.counted.Load() < spec.MinOps && time.Now().Before(end) && !r.stop.Load(); {
		sleepUnless(5*time.Millisecond, done)
	}
	r.measuring.Store(false)
	res := Result{Elapsed: time.Since(start)}
	r.stop.Store(true)
	stuck := false
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		for _, c := range conns {
			c.NetConn().Close()
		}
		<-done
		stuck = true
	}
	res.Ops, res.Units = r.res.Ops, r.res.Units // the workers are done
	res.Slow = r.res.Slow
	slices.SortFunc(res.Slow, func(a, b SlowOp) int { return a.Start.Compare(b.Start) })
	if stuck {
		return res, fmt.Errorf("%s run against %s: requests stuck 60 s after the end", spec.Mode, spec.Addr)
	}
	if r.firstErr != nil && !errors.Is(r.firstErr, net.ErrClosed) {
		return res, fmt.Errorf("%s run against %s: %w", spec.Mode, spec.Addr, r.firstErr)
	}
	if res.Ops == 0 {
		return res, fmt.Errorf("%s run against %s: no request completed in %v", spec.Mode, spec.Addr, res.Elapsed)
	}
	lat := r.lat
	slices.Sort(lat)
	res.P50 = lat[len(lat)/2]
	res.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	res.Max = lat[len(lat)-1]
	return res, nil
}

// run is what the workers of one Measure share.
type run struct {
	measuring, stop atomic.Bool
	counted         atomic.Int64 // requests counted so far
	mu              sync.Mutex   // guards the fields below
	firstErr        error
	res             Result // Ops and Units, added by each worker at its end
	lat             []time.Duration
	slow            time.Duration // Spec.Slow
}

// work loops w on connection i until stop, counting the requests that
// started and ended while measuring; the first error stops every worker.
func (r *run) work(i int, c *wire.Conn, w step) {
	rng := rand.New(rand.NewPCG(uint64(i), 42))
	var ops, units int64
	var mine []time.Duration
	var slow []SlowOp
	for !r.stop.Load() {
		m := r.measuring.Load()
		t0 := time.Now()
		u, err := w(c, rng)
		if err != nil {
			if !r.stop.Load() {
				r.mu.Lock()
				if r.firstErr == nil {
					r.firstErr = err
				}
				r.mu.Unlock()
			}
			r.stop.Store(true)
			break
		}
		if m && r.measuring.Load() {
			r.counted.Add(1)
			ops++
			units += u
			d := time.Since(t0)
			mine = append(mine, d)
			if r.slow > 0 && d > r.slow && len(slow) < maxSlow {
				slow = append(slow, SlowOp{Start: t0, Took: d})
			}
		}
	}
	r.mu.Lock()
	r.res.Ops += ops
	r.res.Units += units
	r.lat = append(r.lat, mine...)
	r.res.Slow = append(r.res.Slow, slow...)
	r.mu.Unlock()
}

// sleepUnless sleeps for d or until done is closed.
func sleepUnless(d time.Duration, done <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// PickFrom returns a Spec.Pick that picks uniformly from oids (as returned
// by Populate); oids must not be empty.
func PickFrom(oids []uint64) func(*rand.Rand) uint64 {
	return func(rng *rand.Rand) uint64 { return oids[rng.IntN(len(oids))] }
}

// PickBelow returns a Spec.Pick that picks uniformly from [0, n), for a
// database whose oids are dense from 0 (a generated data set); n must be
// positive.
func PickBelow(n uint64) func(*rand.Rand) uint64 {
	return func(rng *rand.Rand) uint64 { return rng.Uint64N(n) }
}

// updatesStep is newStep's updates mode: each connection rewrites its own
// records in turn (spec.UpdateOIDs, or spec.Objects it stores first).
func updatesStep(spec Spec) (func() step, error) {
	if len(spec.UpdateOIDs) > 0 && len(spec.UpdateOIDs) < spec.Conns {
		return nil, fmt.Errorf("updates run: %d oids to update for %d connections", len(spec.UpdateOIDs), spec.Conns)
	}
	objs := spec.Objects
	if objs == 0 {
		objs = 16
	}
	conn := 0
	return func() step {
		var own []uint64
		for j := conn; j < len(spec.UpdateOIDs); j += spec.Conns {
			own = append(own, spec.UpdateOIDs[j])
		}
		conn++
		var data []byte
		next := 0
		return func(c *wire.Conn, rng *rand.Rand) (int64, error) {
			if own == nil {
				oids, err := c.Alloc(objs)
				if err != nil {
					return 0, err
				}
				for _, oid := range oids {
					data = AppendFrame(data, oid, spec.Size, nil)
				}
				own = oids
			} else {
				data = AppendFrame(data[:0], own[next], spec.Size, nil)
				next = (next + 1) % len(own)
			}
			st, err := c.CommitData(data)
			if err == nil && st != 'O' {
				err = fmt.Errorf("commit status %q", st)
			}
			return 1, err
		}
	}, nil
}

// orStop returns a channel closed when done or stop (if not nil) is
// closed.
func orStop(done <-chan struct{}, stop <-chan struct{}) <-chan struct{} {
	if stop == nil {
		return done
	}
	c := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-done:
		}
		close(c)
	}()
	return c
}
