package server

import (
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"
)

var errTest = errors.New("injected failure")

func readFull(nc net.Conn, b []byte) (int, error) { return io.ReadFull(nc, b) }

func dialQuick(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, 500*time.Millisecond)
}

// heapGrowth runs f and returns how much the live heap grew.
func heapGrowth(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc) - int64(before.TotalAlloc)
}

// C49: a B count above the limit closes the connection without allocating
// for it; a huge count within the limit allocates nothing up front either.
func TestBulkCountLimit(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	grew := heapGrowth(func() {
		c := ts.dial(t)
		c.send([]byte{'B'}, u32(0xFFFFFFFF))
		c.expectClosed(5 * time.Second)
	})
	if grew > 4<<20 {
		t.Fatalf("server allocated %d bytes for a huge B count", grew)
	}
	// Within the limit, but the oids never come: closed after the timeout.
	ts2 := startServer(t, Config{RequestTimeout: 300 * time.Millisecond}, newMemStore())
	grew = heapGrowth(func() {
		c := ts2.dial(t)
		c.send([]byte{'B'}, u32(DefaultMaxBulk), u64(1))
		if st, _ := c.loadResponse(); st != 'K' {
			t.Fatal(st)
		}
		c.expectClosed(5 * time.Second)
	})
	if grew > 4<<20 {
		t.Fatalf("server allocated %d bytes for a B count", grew)
	}
}

// C50, C33: a commit len of FFFFFFFF and 10 bytes, then silence: closed
// after the inactivity timeout, no large allocation.
func TestHugeCommitLen(t *testing.T) {
	ts := startServer(t, Config{RequestTimeout: 300 * time.Millisecond}, newMemStore())
	grew := heapGrowth(func() {
		c := ts.dial(t)
		c.begin()
		c.send(u32(0xFFFFFFFF), make([]byte, 10))
		c.expectClosed(5 * time.Second)
	})
	if grew > 4<<20 {
		t.Fatalf("server allocated %d bytes", grew)
	}
	// Within the commit limit: the buffer grows with the data only.
	ts3 := startServer(t, Config{RequestTimeout: 300 * time.Millisecond, MaxCommit: MaxCommitLimit}, newMemStore())
	grew = heapGrowth(func() {
		c := ts3.dial(t)
		c.begin()
		c.send(u32(0xFFFFFFF0), make([]byte, 1000))
		c.expectClosed(5 * time.Second)
	})
	if grew > 4<<20 {
		t.Fatalf("server allocated %d bytes for a claimed 4 GiB commit", grew)
	}
}

// C51: half a request, then a stall: other connections' loads are served at
// once, and the staller is closed after the request timeout.
func TestStalledRequest(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	ts := startServer(t, Config{RequestTimeout: timeout}, newMemStore())
	staller := ts.dial(t)
	staller.send([]byte{'L', 0, 0, 0}) // half an oid
	other := ts.dial(t)
	start := time.Now()
	var lat []time.Duration
	for time.Since(start) < timeout/2 {
		t0 := time.Now()
		if st, _ := other.load(1); st != 'K' {
			t.Fatal(st)
		}
		lat = append(lat, time.Since(t0))
	}
	// C51 asks for every load under 100 ms. A load blocked by the staller
	// would take the whole timeout; the 300 ms bound for single loads only
	// absorbs scheduling noise of loaded CI machines (-race, 2 cores), and
	// the median must meet the 100 ms.
	slices.Sort(lat)
	if lat[len(lat)/2] > 100*time.Millisecond || lat[len(lat)-1] > 300*time.Millisecond {
		t.Fatalf("loads beside a stalled connection: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	}
	staller.expectClosed(5 * time.Second)
	if el := time.Since(start); el < timeout*8/10 {
		t.Fatalf("staller closed after %v, before the timeout %v", el, timeout)
	}
	// Idle connections between requests are never closed.
	idle := ts.dial(t)
	idle.expectSilence(2 * timeout)
	idle.send([]byte{'N'})
	idle.read(8)
}

// C51 (commit flavour) and C34: a committer stalled inside phase 2 is closed
// after the timeout and leaves nothing; others commit meanwhile via the lease.
func TestStalledCommitter(t *testing.T) {
	ts := startServer(t, Config{RequestTimeout: 2 * time.Second, CommitLease: 100 * time.Millisecond}, newMemStore())
	a := ts.dial(t)
	b := ts.dial(t)
	oa := a.newOIDs(2)[1]
	b.newOIDs(1)
	if _, st := b.commit(rec(0, "r")); st != 'E' { // A holds ROOT_OID
		t.Fatal(st)
	}
	a.begin()
	a.send(u32(100), make([]byte, 10))
	start := time.Now()
	if _, st := b.commit(rec(oa-1, "r")); st != 'E' { // still A's
		t.Fatal(st)
	}
	ob := b.newOIDs(1)[0]
	if _, st := b.commit(rec(ob, "r")); st != 'O' {
		t.Fatal(st)
	}
	if el := time.Since(start); el > time.Second { // the lease, not the 2 s timeout
		t.Fatalf("commit waited %v behind a stalled committer", el)
	}
	a.expectClosed(5 * time.Second)
	if st, _ := b.load(oa); st != 'K' {
		t.Fatal("stalled commit stored")
	}
}

// C52: a client that stops reading a large B reply is closed after the write
// timeout; others are unaffected.
func TestStalledReader(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		const timeout = 1500 * time.Millisecond
		ts := startServer(t, Config{WriteTimeout: timeout}, open(t))
		w := ts.dial(t)
		o := w.newOIDs(2)[1]
		big := rec(o, string(make([]byte, 1<<20)))
		small := rec(0, "root", o)
		if _, st := w.commit(small, big); st != 'O' {
			t.Fatal(st)
		}
		if tc, ok := w.nc.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		// 64 × 1 MiB requested, never read.
		req := []byte{'B'}
		req = append(req, u32(64)...)
		for range 64 {
			req = append(req, u64(o)...)
		}
		stall := ts.dial(t)
		if tc, ok := stall.nc.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		stall.send(req)
		other := ts.dial(t)
		start := time.Now()
		var lat []time.Duration
		for time.Since(start) < timeout*2/3 {
			t0 := time.Now()
			if st, r := other.load(0); st != 'O' || len(r) != len(small) {
				t.Fatal(st)
			}
			lat = append(lat, time.Since(t0))
		}
		// A load held up by the stalled writer would take the whole write
		// timeout; the bounds leave room for loaded CI machines only.
		slices.Sort(lat)
		if lat[len(lat)/2] > 100*time.Millisecond || lat[len(lat)-1] > timeout/2 {
			t.Fatalf("loads beside a stalled reader: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
		}
		waitFor(t, 10*time.Second, "stalled reader closed", func() bool { return ts.srv.NumConns() == 2 })
		// What was sent before the close is far from the 64 MiB asked for
		// (the orphaned socket may deliver it slowly; a second is enough).
		stall.nc.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := io.Copy(io.Discard, stall.nc)
		if n >= 64<<20 {
			t.Fatalf("stalled reader got the whole reply (%d bytes)", n)
		}
	})
}
