// Command loadgen is a load generator for Durus storage servers: it speaks
// the raw Durus protocol (PROTOCOL.md §4) over N connections, so it measures
// the server rather than a client library, and works against any server
// (durusbdb serve, or Durus's own `durus -s`).
//
// Modes:
//
//	loads      one L per request, random oids from a populated set
//	bulk       one B of -bulk oids per request
//	commits    one small record per commit; each connection allocates its
//	           oids with M
//	bigcommit  -records records in one commit
//
// Each run populates -objects records first (reachable from the root, so no
// collector removes them), warms up for -warmup, then measures for -duration
// and prints operations per second and latency percentiles.
//
// Example:
//
//	loadgen -addr 127.0.0.1:2972 -mode loads -conns 8 -duration 10s
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	addr     string
	mode     string
	conns    int
	duration time.Duration
	warmup   time.Duration
	objects  int
	size     int
	bulk     int
	records  int
	populate bool
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:2972", "server address: host:port, a unix socket path, or @name")
	flag.StringVar(&o.mode, "mode", "loads", "loads, bulk, commits or bigcommit")
	flag.IntVar(&o.conns, "conns", 8, "connections (one goroutine each)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up time before measuring")
	flag.IntVar(&o.objects, "objects", 10000, "records populated before the run (loads, bulk)")
	flag.IntVar(&o.size, "size", 100, "data bytes per record")
	flag.IntVar(&o.bulk, "bulk", 100, "oids per B request (bulk)")
	flag.IntVar(&o.records, "records", 10000, "records per commit (bigcommit)")
	flag.BoolVar(&o.populate, "populate", true, "populate -objects records before a loads or bulk run")
	flag.Parse()
	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	fmt.Println(res)
}

// result is one measured run.
type result struct {
	mode     string
	conns    int
	ops      int64
	units    int64 // records or oids moved, for bulk and bigcommit
	elapsed  time.Duration
	lat      []time.Duration
	unitName string
}

func (r result) String() string {
	var b strings.Builder
	secs := r.elapsed.Seconds()
	fmt.Fprintf(&b, "mode=%s conns=%d ops=%d elapsed=%.2fs ops/s=%.0f", r.mode, r.conns, r.ops, secs, float64(r.ops)/secs)
	if r.unitName != "" {
		fmt.Fprintf(&b, " %s/s=%.0f", r.unitName, float64(r.units)/secs)
	}
	if len(r.lat) > 0 {
		slices.Sort(r.lat)
		p := func(q float64) time.Duration { return r.lat[min(len(r.lat)-1, int(q*float64(len(r.lat))))] }
		fmt.Fprintf(&b, " p50=%v p99=%v max=%v", p(0.50), p(0.99), r.lat[len(r.lat)-1])
	}
	return b.String()
}

// conn is one raw protocol connection.
type conn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
	b  []byte
}

func dial(addr string) (*conn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, ".") {
		network = "unix"
	} else if strings.HasPrefix(addr, "@") {
		network, addr = "unix", strings.ReplaceAll(addr, "@", "\x00")
	}
	nc, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, 256<<10), w: bufio.NewWriterSize(nc, 256<<10)}
	// V: protocol 1.
	c.w.WriteByte('V')
	c.w.Write(be32(1))
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var v [4]byte
	if _, err := io.ReadFull(c.r, v[:]); err != nil {
		return nil, fmt.Errorf("V: %w", err)
	}
	return c, nil
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// newOIDs sends M k.
func (c *conn) newOIDs(k int) ([]uint64, error) {
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

// alloc returns n oids via M 255 requests.
func (c *conn) alloc(n int) ([]uint64, error) {
	var out []uint64
	for len(out) < n {
		o, err := c.newOIDs(min(255, n-len(out)))
		if err != nil {
			return nil, err
		}
		out = append(out, o...)
	}
	return out, nil
}

// appendRecord appends a commit frame for a record of oid with size data
// bytes and refs.
func appendRecord(b []byte, oid uint64, size int, refs []uint64) []byte {
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

// commit runs both phases with data and returns the status byte.
func (c *conn) commit(data []byte) (byte, error) {
	c.w.WriteByte('C')
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	var b [8]byte
	if _, err := io.ReadFull(c.r, b[:4]); err != nil {
		return 0, err
	}
	if _, err := c.r.Discard(8 * int(binary.BigEndian.Uint32(b[:4]))); err != nil {
		return 0, err
	}
	c.w.Write(be32(uint32(len(data))))
	c.w.Write(data)
	if err := c.w.Flush(); err != nil {
		return 0, err
	}
	st, err := c.r.ReadByte()
	return st, err
}

// skipLoad reads one load-response.
func (c *conn) skipLoad() (byte, error) {
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

// sync sends S and discards the list.
func (c *conn) sync() error {
	c.w.WriteByte('S')
	if err := c.w.Flush(); err != nil {
		return err
	}
	var b [4]byte
	if _, err := io.ReadFull(c.r, b[:]); err != nil {
		return err
	}
	_, err := c.r.Discard(8 * int(binary.BigEndian.Uint32(b[:])))
	return err
}

// populate stores n records reachable from the root and returns their oids.
func populate(o options) ([]uint64, error) {
	c, err := dial(o.addr)
	if err != nil {
		return nil, err
	}
	defer c.nc.Close()
	oids, err := c.alloc(o.objects + 1)
	if err != nil {
		return nil, err
	}
	// The root (or, if the root already exists, any oid) refers to all.
	root := uint64(0)
	objs := oids
	if oids[0] == 0 {
		objs = oids[1:]
	} else {
		root, objs = oids[0], oids[1:]
	}
	const batch = 5000
	for i := 0; i < len(objs); i += batch {
		var data []byte
		for _, oid := range objs[i:min(len(objs), i+batch)] {
			data = appendRecord(data, oid, o.size, nil)
		}
		if st, err := c.commit(data); err != nil || st != 'O' {
			return nil, fmt.Errorf("populate commit: status %q, %v", st, err)
		}
	}
	if st, err := c.commit(appendRecord(nil, root, 16, objs)); err != nil || st != 'O' {
		return nil, fmt.Errorf("populate root commit: status %q, %v", st, err)
	}
	return objs, nil
}

// worker runs one connection's loop until stop; it counts operations only
// while measuring is set.
type worker func(c *conn, rng *rand.Rand) (units int64, err error)

func run(o options) (result, error) {
	var objs []uint64
	var err error
	if (o.mode == "loads" || o.mode == "bulk") && o.populate {
		if objs, err = populate(o); err != nil {
			return result{}, err
		}
	}
	res := result{mode: o.mode, conns: o.conns}
	var mk func(c *conn) worker
	switch o.mode {
	case "loads":
		mk = func(c *conn) worker {
			var req [9]byte
			req[0] = 'L'
			return func(c *conn, rng *rand.Rand) (int64, error) {
				binary.BigEndian.PutUint64(req[1:], objs[rng.IntN(len(objs))])
				c.w.Write(req[:])
				if err := c.w.Flush(); err != nil {
					return 0, err
				}
				st, err := c.skipLoad()
				if err == nil && st != 'O' {
					err = fmt.Errorf("load status %q", st)
				}
				return 1, err
			}
		}
	case "bulk":
		res.unitName = "records"
		mk = func(c *conn) worker {
			req := make([]byte, 5+8*o.bulk)
			req[0] = 'B'
			binary.BigEndian.PutUint32(req[1:], uint32(o.bulk))
			return func(c *conn, rng *rand.Rand) (int64, error) {
				for i := range o.bulk {
					binary.BigEndian.PutUint64(req[5+8*i:], objs[rng.IntN(len(objs))])
				}
				c.w.Write(req)
				if err := c.w.Flush(); err != nil {
					return 0, err
				}
				for range o.bulk {
					st, err := c.skipLoad()
					if err != nil {
						return 0, err
					}
					if st != 'O' {
						return 0, fmt.Errorf("bulk status %q", st)
					}
				}
				return int64(o.bulk), nil
			}
		}
	case "commits":
		mk = func(c *conn) worker {
			var pool []uint64
			var data []byte
			return func(c *conn, rng *rand.Rand) (int64, error) {
				if len(pool) == 0 {
					p, err := c.newOIDs(32)
					if err != nil {
						return 0, err
					}
					pool = p
					if pool[0] == 0 {
						// A fresh database: store the root first, as a
						// Durus Connection does, so that no other
						// connection waits for ROOT_OID to be released.
						st, err := c.commit(appendRecord(nil, 0, 16, nil))
						if err != nil || st != 'O' {
							return 0, fmt.Errorf("root commit: status %q, %v", st, err)
						}
						pool = pool[1:]
					}
				}
				oid := pool[0]
				pool = pool[1:]
				data = appendRecord(data[:0], oid, o.size, nil)
				st, err := c.commit(data)
				if err == nil && st != 'O' {
					err = fmt.Errorf("commit status %q", st)
				}
				return 1, err
			}
		}
	case "bigcommit":
		res.unitName = "records"
		mk = func(c *conn) worker {
			var data []byte
			return func(c *conn, rng *rand.Rand) (int64, error) {
				oids, err := c.alloc(o.records)
				if err != nil {
					return 0, err
				}
				if oids[0] == 0 {
					more, err := c.newOIDs(1)
					if err != nil {
						return 0, err
					}
					oids = append(oids[1:], more...)
				}
				data = data[:0]
				for _, oid := range oids {
					data = appendRecord(data, oid, o.size, nil)
				}
				st, err := c.commit(data)
				if err == nil && st != 'O' {
					err = fmt.Errorf("commit status %q", st)
				}
				return int64(o.records), err
			}
		}
	default:
		return res, fmt.Errorf("unknown mode %q", o.mode)
	}

	var measuring, stop atomic.Bool
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range o.conns {
		c, err := dial(o.addr)
		if err != nil {
			return res, err
		}
		defer c.nc.Close()
		w := mk(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			var ops, units int64
			var lat []time.Duration
			for !stop.Load() {
				m := measuring.Load()
				t0 := time.Now()
				u, err := w(c, rng)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					return
				}
				if m && measuring.Load() {
					ops++
					units += u
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			res.ops += ops
			res.units += units
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	time.Sleep(o.warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(o.duration)
	measuring.Store(false)
	res.elapsed = time.Since(start)
	stop.Store(true)
	wg.Wait()
	if firstErr != nil && !errors.Is(firstErr, net.ErrClosed) {
		return res, firstErr
	}
	return res, nil
}
