package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// rawConn is one raw Durus protocol connection (PROTOCOL.md §4), the same
// bytes a stock client sends, without Python in the way.
type rawConn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

// dialRaw connects to a TCP address and sends V 1.
func dialRaw(addr string) (*rawConn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &rawConn{nc: nc, r: bufio.NewReaderSize(nc, 256<<10), w: bufio.NewWriterSize(nc, 256<<10)}
	c.w.Write([]byte{'V', 0, 0, 0, 1})
	if err := c.w.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	var v [4]byte
	if _, err := io.ReadFull(c.r, v[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("V reply from %s: %w", addr, err)
	}
	return c, nil
}

// close sends the stock client's goodbye byte and closes.
func (c *rawConn) close() {
	c.w.WriteByte('.')
	c.w.Flush()
	c.nc.Close()
}

// newOIDs sends M k (k ≤ 255).
func (c *rawConn) newOIDs(k int) ([]uint64, error) {
	c.w.Write([]byte{'M', byte(k)})
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	out := make([]uint64, k)
	var b [8]byte
	for i := range out {
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			return nil, err
		}
		out[i] = binary.BigEndian.Uint64(b[:])
	}
	return out, nil
}

// alloc returns n oids other than 0, by M 255 requests.
func (c *rawConn) alloc(n int) ([]uint64, error) {
	out := make([]uint64, 0, n)
	for len(out) < n {
		o, err := c.newOIDs(min(255, n-len(out)+1))
		if err != nil {
			return nil, err
		}
		for _, oid := range o {
			if oid != 0 && len(out) < n {
				out = append(out, oid)
			}
		}
	}
	return out, nil
}

// appendFrame appends a commit frame (int4 length, oid, record) for a
// record of oid with size data bytes and refs.
func appendFrame(b []byte, oid uint64, size int, refs []uint64) []byte {
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

// commit runs both commit phases with data (concatenated frames) and
// returns the status byte.
func (c *rawConn) commit(data []byte) (byte, error) {
	c.w.WriteByte('C')
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	var b [4]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return 0, err
	}
	if _, err := c.r.Discard(8 * int(binary.BigEndian.Uint32(b[:]))); err != nil {
		return 0, err
	}
	c.w.Write(binary.BigEndian.AppendUint32(b[:0], uint32(len(data))))
	c.w.Write(data)
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	return c.r.ReadByte()
}

// readLoad reads one load-response and returns its status.
func (c *rawConn) readLoad() (byte, error) {
	st, err := c.r.ReadByte()
	if err != nil || st != 'O' {
		return st, err
	}
	var b [4]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return 0, err
	}
	_, err = c.r.Discard(int(binary.BigEndian.Uint32(b[:])))
	return st, err
}

// load sends L oid and returns the reply status.
func (c *rawConn) load(oid uint64) (byte, error) {
	var req [9]byte
	req[0] = 'L'
	binary.BigEndian.PutUint64(req[1:], oid)
	c.w.Write(req[:])
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	return c.readLoad()
}

// populate stores n records of size data bytes and makes the root (oid 0,
// overwritten) refer to them and to keep, so that no collector removes
// them. It returns the new oids.
func populate(addr string, n, size int, keep []uint64) ([]uint64, error) {
	c, err := dialRaw(addr)
	if err != nil {
		return nil, err
	}
	defer c.close()
	oids, err := c.alloc(n)
	if err != nil {
		return nil, err
	}
	batch := max(1, min(5000, (8<<20)/(size+32)))
	var data []byte
	for i := 0; i < len(oids); i += batch {
		data = data[:0]
		for _, oid := range oids[i:min(len(oids), i+batch)] {
			data = appendFrame(data, oid, size, nil)
		}
		if st, err := c.commit(data); err != nil || st != 'O' {
			return nil, fmt.Errorf("populate commit: status %q, %v", st, err)
		}
	}
	refs := append(slices.Clone(keep), oids...)
	if st, err := c.commit(appendFrame(nil, 0, 16, refs)); err != nil || st != 'O' {
		return nil, fmt.Errorf("populate root commit: status %q, %v", st, err)
	}
	return oids, nil
}

// runSpec describes one measured run of the load generator.
type runSpec struct {
	addr     string
	mode     string // loads, bulk, commits, bigcommit
	conns    int
	warmup   time.Duration
	duration time.Duration
	pick     func(rng *rand.Rand) uint64 // oid to load (loads, bulk)
	bulk     int                         // oids per B (bulk)
	records  int                         // records per commit (bigcommit)
	size     int                         // data bytes per committed record
	minOps   int64                       // measure at least this many requests (bounded by 2 min)
}

// runResult is what a run measured.
type runResult struct {
	ops     int64 // requests or commits completed while measuring
	units   int64 // oids loaded (bulk) or records committed (bigcommit)
	elapsed time.Duration
	p50     time.Duration
	p99     time.Duration
}

func (r runResult) opsPerSec() float64   { return float64(r.ops) / r.elapsed.Seconds() }
func (r runResult) unitsPerSec() float64 { return float64(r.units) / r.elapsed.Seconds() }

// step is one request of a worker; it returns the units it moved.
type step func(c *rawConn, rng *rand.Rand) (int64, error)

// newStep returns the per-connection request function of spec.mode.
func newStep(spec runSpec) (func() step, error) {
	switch spec.mode {
	case "loads":
		return func() step {
			var req [9]byte
			req[0] = 'L'
			return func(c *rawConn, rng *rand.Rand) (int64, error) {
				binary.BigEndian.PutUint64(req[1:], spec.pick(rng))
				c.w.Write(req[:])
				if err := c.w.Flush(); err != nil {
					return 0, err
				}
				st, err := c.readLoad()
				if err == nil && st != 'O' {
					err = fmt.Errorf("load status %q", st)
				}
				return 1, err
			}
		}, nil
	case "bulk":
		return func() step {
			req := make([]byte, 5+8*spec.bulk)
			req[0] = 'B'
			binary.BigEndian.PutUint32(req[1:], uint32(spec.bulk))
			return func(c *rawConn, rng *rand.Rand) (int64, error) {
				for i := range spec.bulk {
					binary.BigEndian.PutUint64(req[5+8*i:], spec.pick(rng))
				}
				c.w.Write(req)
				if err := c.w.Flush(); err != nil {
					return 0, err
				}
				for range spec.bulk {
					st, err := c.readLoad()
					if err != nil {
						return 0, err
					}
					if st != 'O' {
						return 0, fmt.Errorf("bulk status %q", st)
					}
				}
				return int64(spec.bulk), nil
			}
		}, nil
	case "commits":
		return func() step {
			var pool []uint64
			var data []byte
			return func(c *rawConn, rng *rand.Rand) (int64, error) {
				if len(pool) == 0 {
					p, err := c.alloc(32)
					if err != nil {
						return 0, err
					}
					pool = p
				}
				oid := pool[0]
				pool = pool[1:]
				data = appendFrame(data[:0], oid, spec.size, nil)
				st, err := c.commit(data)
				if err == nil && st != 'O' {
					err = fmt.Errorf("commit status %q", st)
				}
				return 1, err
			}
		}, nil
	case "bigcommit":
		return func() step {
			var data []byte
			return func(c *rawConn, rng *rand.Rand) (int64, error) {
				oids, err := c.alloc(spec.records)
				if err != nil {
					return 0, err
				}
				data = data[:0]
				for _, oid := range oids {
					data = appendFrame(data, oid, spec.size, nil)
				}
				st, err := c.commit(data)
				if err == nil && st != 'O' {
					err = fmt.Errorf("commit status %q", st)
				}
				return int64(spec.records), err
			}
		}, nil
	}
	return nil, fmt.Errorf("unknown mode %q", spec.mode)
}

// measure runs spec: spec.conns connections loop on their request, the
// first spec.warmup is not counted, then spec.duration is. A watchdog
// closes every connection if the run overruns by 60 s, so a stuck server
// cannot hang the suite.
func measure(spec runSpec) (runResult, error) {
	mk, err := newStep(spec)
	if err != nil {
		return runResult{}, err
	}
	conns := make([]*rawConn, 0, spec.conns)
	defer func() {
		for _, c := range conns {
			c.nc.Close()
		}
	}()
	for range spec.conns {
		c, err := dialRaw(spec.addr)
		if err != nil {
			return runResult{}, err
		}
		conns = append(conns, c)
	}
	var measuring, stop atomic.Bool
	var counted atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var res runResult
	var lat []time.Duration
	var wg sync.WaitGroup
	for i, c := range conns {
		w := mk()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			var ops, units int64
			var mine []time.Duration
			for !stop.Load() {
				m := measuring.Load()
				t0 := time.Now()
				u, err := w(c, rng)
				if err != nil {
					if !stop.Load() {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					stop.Store(true)
					break
				}
				if m && measuring.Load() {
					counted.Add(1)
					ops++
					units += u
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			res.ops += ops
			res.units += units
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	sleepUnless(spec.warmup, done)
	measuring.Store(true)
	start := time.Now()
	sleepUnless(spec.duration, done)
	for end := time.Now().Add(2 * time.Minute); counted.Load() < spec.minOps && time.Now().Before(end) && !stop.Load(); {
		sleepUnless(5*time.Millisecond, done)
	}
	measuring.Store(false)
	res.elapsed = time.Since(start)
	stop.Store(true)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		for _, c := range conns {
			c.nc.Close()
		}
		<-done
		return res, fmt.Errorf("%s run against %s: requests stuck 60 s after the end", spec.mode, spec.addr)
	}
	if firstErr != nil && !errors.Is(firstErr, net.ErrClosed) {
		return res, fmt.Errorf("%s run against %s: %w", spec.mode, spec.addr, firstErr)
	}
	if res.ops == 0 {
		return res, fmt.Errorf("%s run against %s: no request completed in %v", spec.mode, spec.addr, spec.duration)
	}
	slices.Sort(lat)
	res.p50 = lat[len(lat)/2]
	res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	return res, nil
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

// pickFrom picks uniformly from oids.
func pickFrom(oids []uint64) func(*rand.Rand) uint64 {
	return func(rng *rand.Rand) uint64 { return oids[rng.IntN(len(oids))] }
}

// pickBelow picks uniformly from [0, n).
func pickBelow(n uint64) func(*rand.Rand) uint64 {
	return func(rng *rand.Rand) uint64 { return rng.Uint64N(n) }
}
