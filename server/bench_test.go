package server

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchConn is a minimal raw client for benchmarks.
type benchConn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

func benchDial(b *testing.B, ts *testServer) *benchConn {
	nc, err := net.Dial(ts.net, ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	return &benchConn{nc, bufio.NewReader(nc), bufio.NewWriter(nc)}
}

// runParallelConns runs op on conns connections until b.N operations are
// done and reports the latency percentiles.
func runParallelConns(b *testing.B, ts *testServer, conns int, setup func(c *benchConn), op func(c *benchConn) error) {
	cs := make([]*benchConn, conns)
	for i := range cs {
		cs[i] = benchDial(b, ts)
		if setup != nil {
			setup(cs[i])
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	b.ResetTimer()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l []time.Duration
			for range work {
				t0 := time.Now()
				if err := op(c); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, l...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	}
}

func benchStores(b *testing.B, f func(b *testing.B, st Storage)) {
	for _, k := range storeKinds() {
		b.Run(k.name, func(b *testing.B) { f(b, k.open(b)) })
	}
}

// BenchmarkLoad: L of a small record over 8 connections.
func BenchmarkLoad(b *testing.B) {
	benchStores(b, func(b *testing.B, st Storage) {
		ts := startServer(b, Config{Logger: quietLogger()}, st)
		c := ts.dial(b)
		if _, s := c.commit(rec(0, "root-record-of-some-size-------------------------------------")); s != 'O' {
			b.Fatal(s)
		}
		req := append([]byte{'L'}, u64(0)...)
		runParallelConns(b, ts, 8, nil, func(c *benchConn) error {
			c.w.Write(req)
			c.w.Flush()
			st, err := c.r.ReadByte()
			if err != nil || st != 'O' {
				return err
			}
			var n [4]byte
			io.ReadFull(c.r, n[:])
			_, err = c.r.Discard(int(binary.BigEndian.Uint32(n[:])))
			return err
		})
	})
}

// BenchmarkCommit: one small record per commit over 8 connections.
func BenchmarkCommit(b *testing.B) {
	benchStores(b, func(b *testing.B, st Storage) {
		ts := startServer(b, Config{Logger: quietLogger()}, st)
		pools := map[*benchConn][]uint64{}
		var mu sync.Mutex
		runParallelConns(b, ts, 8, nil, func(c *benchConn) error {
			mu.Lock()
			pool := pools[c]
			mu.Unlock()
			if len(pool) == 0 {
				c.w.Write([]byte{'M', 32})
				c.w.Flush()
				var o [256]byte
				if _, err := io.ReadFull(c.r, o[:]); err != nil {
					return err
				}
				for i := range 32 {
					if oid := binary.BigEndian.Uint64(o[8*i:]); oid != 0 {
						pool = append(pool, oid)
					}
				}
			}
			oid := pool[0]
			mu.Lock()
			pools[c] = pool[1:]
			mu.Unlock()
			c.w.WriteByte('C')
			c.w.Flush()
			var k [4]byte
			if _, err := io.ReadFull(c.r, k[:]); err != nil {
				return err
			}
			c.r.Discard(8 * int(binary.BigEndian.Uint32(k[:])))
			data := txnData(rec(oid, "some small state of an object"))
			c.w.Write(u32(uint32(len(data))))
			c.w.Write(data)
			c.w.Flush()
			st, err := c.r.ReadByte()
			if err == nil && st != 'O' {
				b.Fatalf("status %q", st)
			}
			return err
		})
	})
}
