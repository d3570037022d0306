package server

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestTricklersDoNotHoldInflight (QA F2, scaled down): connections that
// send all but a few bytes of their commit data and then a byte now and
// then (each read within RequestTimeout) hold the whole budget of bytes in
// flight; they are closed once their data is later than RequestTimeout
// plus its length at MinReadRate, so a well-behaved commit then succeeds.
func TestTricklersDoNotHoldInflight(t *testing.T) {
	const (
		size     = 1 << 20 // each trickler's commit len
		rate     = 1 << 20 // MinReadRate: bound = RequestTimeout + 1 s
		reqTO    = time.Second
		bound    = reqTO + time.Second
		keep     = 40 // bytes trickled, one every tick
		tick     = 250 * time.Millisecond
		nTrickle = 6
	)
	// Each trickler is charged its buffers, 64 KiB + 256 KiB + 1 MiB:
	// three fill the budget, the others are refused and discard.
	const charge = 64<<10 + 256<<10 + 1<<20
	const budget = 3 * charge
	ts := startServer(t, Config{MaxInflight: budget, InflightWait: 300 * time.Millisecond,
		CommitLease: 100 * time.Millisecond, RequestTimeout: reqTO, MinReadRate: rate}, newMemStore())

	legit := ts.dial(t)
	oid := legit.newOIDs(1)[0]

	start := time.Now()
	began := make([]time.Time, nTrickle) // when each trickler sent its data
	closed := make([]time.Duration, nTrickle)
	var wg sync.WaitGroup
	var tricklers []*client
	defer func() { // before a failed test completes: its goroutines log
		for _, c := range tricklers {
			c.nc.Close()
		}
		wg.Wait()
	}()
	for i := range nTrickle {
		c := ts.dialRaw(t)
		tricklers = append(tricklers, c)
		began[i] = time.Now()
		c.send([]byte{'C'}, u32(size), make([]byte, size-keep))
		wg.Go(func() { // the reader: the phase 1 reply, then the end
			var b [64]byte
			c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				if _, err := c.nc.Read(b[:]); err != nil {
					if !errors.Is(err, io.EOF) {
						t.Logf("trickler %d: %v", i, err)
					}
					closed[i] = time.Since(began[i])
					return
				}
			}
		})
		wg.Go(func() { // the trickle: a byte every tick
			for range keep {
				time.Sleep(tick) // the trickler's pace, not a wait
				c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.nc.Write([]byte{0}); err != nil {
					return
				}
			}
		})
		// The first three are charged in full one after the other, the
		// third filling the budget (the next one, dialled sooner, could
		// take the token by revocation and a part of the budget while this
		// one's buffer still grows: then neither holds its full charge).
		if i < 3 {
			want := int64(i+1) * charge
			waitFor(t, 10*time.Second, fmt.Sprintf("trickler %d charged in full", i), func() bool {
				used, _ := ts.srv.InflightBytes()
				return used == want
			})
		}
	}
	// The well-behaved client commits until it succeeds, for less time
	// than the tricklers would take to send their last byte.
	var ok bool
	var tries int
	for !ok && time.Since(start) < keep*tick*3/4 {
		tries++
		legit.begin()
		switch st := legit.commitData(txnData(rec(oid, "honest"))); st {
		case 'O':
			ok = true
		case 'E':
			time.Sleep(100 * time.Millisecond) // the client's retry pace
		default:
			t.Fatalf("well-behaved commit: status %q", st)
		}
	}
	if !ok {
		used, limit := ts.srv.InflightBytes()
		t.Fatalf("no well-behaved commit succeeded in %v (%d tries; %d of %d bytes in flight in use)",
			time.Since(start), tries, used, limit)
	}
	okAfter := time.Since(start)
	wg.Wait()
	// Each trickler is timed from its own data; slack for the token's
	// lease and -race on a loaded machine.
	limit := bound + 100*time.Millisecond + 2*time.Second
	if raceEnabled {
		limit += 2 * time.Second
	}
	for i, d := range closed {
		if d > limit {
			t.Errorf("trickler %d closed after %v, want within %v", i, d, limit)
		}
	}
	if !containsLog(ts, "commit data arriving too slowly") {
		t.Errorf("no log line for the slow commit data")
	}
	t.Logf("well-behaved commit succeeded after %v (%d tries); tricklers closed after %v", okAfter, tries, closed)
}

// TestTricklerClosedWithinWindow: a commit longer than one window
// (MinReadRate·RequestTimeout) whose data stops arriving at that rate is
// closed within RequestTimeout of its last whole window, not only at
// RequestTimeout plus its whole length at MinReadRate (here 9 s).
func TestTricklerClosedWithinWindow(t *testing.T) {
	const size = 8 << 20
	ts := startServer(t, Config{RequestTimeout: time.Second, MinReadRate: 1 << 20}, newMemStore())
	c := ts.dialRaw(t)
	start := time.Now()
	c.send([]byte{'C'}, u32(size), make([]byte, size-40))
	done := make(chan struct{})
	defer func() { close(done); c.nc.Close() }()
	go func() { // a byte every 250 ms: each read within RequestTimeout
		for range 40 {
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
			c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.nc.Write([]byte{0}); err != nil {
				return
			}
		}
	}()
	c.read(4) // phase 1: no invalid oids
	limit := 4 * time.Second
	if raceEnabled {
		limit += 2 * time.Second
	}
	c.expectClosed(limit)
	if !containsLog(ts, "commit data arriving too slowly") {
		t.Errorf("no log line for the slow commit data")
	}
	t.Logf("closed after %v", time.Since(start))
}
