//go:build bdb

package repl

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestReplServerForwardCounter: stormConns clients of a replica increment
// one shared counter for 2 s as a stock Durus client does (sync, load,
// commit; the counter in the phase-1 invalidations, or an I from the
// master, is a conflict: retry). Forwarded commits travel to the master
// together (the replica's token passes on before the master answers), yet
// no increment is lost or applied twice: the counter ends at the number
// of commits answered O, on the master and on the replica.
func TestReplServerForwardCounter(t *testing.T) {
	sites := startGroup(t, 3)
	m, r := sites[0], sites[1]
	ctr := setupRoot(t, dial(t, m), 1)[0]
	zero := record.Build(ctr, []byte("0"))
	if _, st, err := dial(t, m).Commit([][]byte{zero}); err != nil || st != wire.StatusOK {
		t.Fatalf("counter commit: %q %v", st, err)
	}
	testwait.For(t, r.name+" serving the counter", func() bool { return loadsAs(r, ctr, zero) })
	addr, _, _, _ := r.state()
	var acked, conflicts atomic.Int64
	stop := time.Now().Add(2 * time.Second)
	errs := make(chan error, stormConns)
	var wg sync.WaitGroup
	for range stormConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wc, err := wire.Dial(addr, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer wc.Close()
			for time.Now().Before(stop) {
				ok, err := increment(wc, ctr)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					acked.Add(1)
				} else {
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := acked.Load()
	t.Logf("%d increments acknowledged through the replica, %d conflicts", n, conflicts.Load())
	if n < 2 {
		t.Fatalf("%d increments acknowledged", n)
	}
	want := record.Build(ctr, []byte(strconv.FormatInt(n, 10)))
	for _, s := range []*site{m, r} {
		if got, ok := loadOn(s, ctr); !ok || string(got) != string(want) {
			t.Fatalf("counter on %s: %q, want %q (%d increments acknowledged)", s.name, got, want, n)
		}
	}
}

// increment is one transaction of a stock client adding 1 to the counter
// ctr: true if answered O, false on a conflict.
func increment(wc *wire.Conn, ctr uint64) (bool, error) {
	if _, err := wc.Sync(); err != nil {
		return false, err
	}
	st, rec, err := wc.Load(ctr)
	if err != nil {
		return false, err
	}
	if st == wire.StatusInvalid { // invalidated since the sync
		return false, nil
	}
	if st != wire.StatusOK {
		return false, fmt.Errorf("load of the counter: %q", st)
	}
	p, err := record.Parse(rec)
	if err != nil {
		return false, err
	}
	v, err := strconv.Atoi(string(p.Data))
	if err != nil {
		return false, err
	}
	inv, err := wc.Begin()
	if err != nil {
		return false, err
	}
	if slices.Contains(inv, ctr) { // ConflictError: abort
		_, err := wc.Finish(nil)
		return false, err
	}
	st, err = wc.Finish(wire.Frames(record.Build(ctr, []byte(strconv.Itoa(v+1)))))
	switch {
	case err != nil:
		return false, err
	case st == wire.StatusInvalid:
		return false, nil
	case st != wire.StatusOK:
		return false, fmt.Errorf("increment to %d: %q", v+1, st)
	}
	return true, nil
}
