package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
)

// commitFigures measures new-object commits (M + commit of one 100-byte
// record) and update commits (one 200-byte update of one of the
// connection's own records) at 1, 8 and 32 connections against srv. Its
// rows are commits%d and updates%d, with suffix ("" or "nosync_") as
// their prefix.
func (s *suite) commitFigures(srv *server, prefix string) {
	what := strings.TrimSuffix(prefix, "_")
	for _, conns := range s.commitConns {
		if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "commits", Conns: conns, Size: 100},
			strings.TrimSpace(fmt.Sprintf("%s commits %d conns %s", srv.col, conns, what))); ok {
			s.res.set(fmt.Sprintf("%scommits%d", prefix, conns), srv.col, r.OpsPerSec())
		}
		if srv.col == "python" && prefix != "" {
			continue
		}
		if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "updates", Conns: conns, Size: s.updateSize},
			strings.TrimSpace(fmt.Sprintf("%s updates %d conns %s", srv.col, conns, what))); ok {
			s.res.set(fmt.Sprintf("%supdates%d", prefix, conns), srv.col, r.OpsPerSec())
		}
	}
}

// nosyncFigures measures the commit rows of a durusbdb backend started with
// --durability nosync (acknowledged before any fsync) on a fresh database.
func (s *suite) nosyncFigures(col string) {
	s.logf("server %s, durability nosync", col)
	path := filepath.Join(s.work, "db-nosync-"+col)
	label := "nosync-" + col
	srv, err := s.startServer(col, path, label, true, "--gc-grace=24h", "--durability=nosync")
	if err != nil {
		s.fail("start "+label, err)
		return
	}
	defer func() {
		s.stopServer(srv, label)
		os.RemoveAll(path)
	}()
	s.commitFigures(srv, "nosync_")
}

// stallFigures measures commit latency on a copy of the data set ds (a
// tree of ds.count reachable records) with 8 connections each updating
// its own leaves, durably: first with no collector working, then while
// the reference-count collector removes ds.count/10 garbage records
// (`durusbdb gc --grace 1ms` against the running server, as fast as it
// goes), then during a full collection (`durusbdb gc --full`). The
// figures during a collection are measured from its start until it ends.
func (s *suite) stallFigures(col string, ds *dataset) {
	s.logf("commit latency during collection, %s, %s objects", col, count(ds.count))
	path := filepath.Join(s.work, "db-stall-"+col)
	os.RemoveAll(path)
	if _, _, err := s.ps.runCmd(time.Hour, s.logPath("copy"), "cp", "-a", ds.dirs[col], path); err != nil {
		s.fail("copy data set for "+col, err)
		return
	}
	defer os.RemoveAll(path)
	label := "stall-" + col
	srv, err := s.startServer(col, path, label, false, "--gc-grace=24h")
	if err != nil {
		s.fail("start "+label, err)
		return
	}
	defer s.stopServer(srv, label)
	garbage := int(ds.count / 10)
	if err := makeGarbage(srv.addr, garbage, 100); err != nil {
		s.fail("garbage for "+label, err)
		return
	}
	// Leaves of the tree (oids whose children would be ≥ count): an update
	// without references keeps the tree whole.
	const conns, perConn = 8, 16
	var leaves []uint64
	for oid := ds.count - 1; oid >= ds.count/2 && len(leaves) < conns*perConn; oid-- {
		leaves = append(leaves, oid)
	}
	spec := gen.Spec{Addr: srv.addr, Mode: "updates", Conns: conns, Size: s.updateSize, UpdateOIDs: leaves}
	if r, ok := s.fig(spec, col+" updates 8 conns, collector idle"); ok {
		s.setLatency("stall_idle", col, r)
	}
	run := func(key, what string, argv ...string) {
		done := make(chan struct{})
		var out string
		var el time.Duration
		var err error
		go func() {
			defer close(done)
			out, el, err = s.ps.runCmd(time.Hour, s.logPath("gc"), argv...)
		}()
		sp := spec
		sp.Warmup, sp.Duration, sp.Stop, sp.MinOps = time.Nanosecond, time.Hour, done, 50
		r, ok := s.fig(sp, fmt.Sprintf("%s updates 8 conns, %s", col, what))
		<-done
		if err != nil {
			s.fail(what+" on "+col, err)
			return
		}
		s.logf("  %s: %s (%.2f s)", what, strings.TrimSpace(out), el.Seconds())
		s.res.set(key+"_secs", col, el.Seconds())
		if ok {
			s.setLatency(key, col, r)
		}
	}
	run("stall_rc", fmt.Sprintf("refcount collector removing %s garbage records", count(uint64(garbage))),
		s.durusbdb, "gc", "--dir", path, "--grace", "1ms")
	run("stall_full", "gc --full", s.durusbdb, "gc", "--dir", path, "--full")
}

// setLatency records the p50, p99 and max commit latency of r in ms.
func (s *suite) setLatency(key, col string, r gen.Result) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	s.res.set(key+"_p50", col, ms(r.P50))
	s.res.set(key+"_p99", col, ms(r.P99))
	s.res.set(key+"_max", col, ms(r.Max))
}

// makeGarbage commits n new records of size data bytes that nothing
// refers to: queued for the reference-count collector.
func makeGarbage(addr string, n, size int) error {
	c, err := gen.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	oids, err := c.Alloc(n)
	if err != nil {
		return err
	}
	var data []byte
	for i := 0; i < len(oids); i += 5000 {
		data = data[:0]
		for _, oid := range oids[i:min(len(oids), i+5000)] {
			data = gen.AppendFrame(data, oid, size, nil)
		}
		if st, err := c.CommitData(data); err != nil || st != 'O' {
			return fmt.Errorf("garbage commit: status %q, %v", st, err)
		}
	}
	return nil
}
