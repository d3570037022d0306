package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
)

// Paired figures: a server measured alternately with the trivial server
// (trivial, server A, server B, trivial, …), each figure divided by the
// mean of the trivial figures just before and just after it, the median of
// the rounds kept. On a shared machine the load of other tenants changes
// from minute to minute; a ratio of adjacent runs is far steadier than one
// of figures taken minutes apart (the ceilings run first and last).

// pairTarget is one server figure taken in every round of alternate: row
// key, column col.
type pairTarget struct {
	key, col string
	fig      func(round int) (float64, bool) // one measurement
}

// opsFig returns a figure of a pair: the operations per second of a load
// generator run of spec, logged as what and the round.
func (s *suite) opsFig(spec gen.Spec, what string) func(round int) (float64, bool) {
	return func(round int) (float64, bool) {
		r, ok := s.fig(spec, fmt.Sprintf("%s, round %d", what, round))
		return r.OpsPerSec(), ok
	}
}

// pairedRounds is the number of rounds of alternate at the suite's scale.
func (s *suite) pairedRounds() int {
	if s.scale == "smoke" {
		return 1
	}
	return 3
}

// cell is one figure of the results: row key, column col.
type cell struct{ key, col string }

// alternate measures ref, then every target, then ref again, for the
// suite's rounds (each ref figure serves the round before and the round
// after it), and sets each target's row and column to the median of its
// ratios to the mean of the ref figures around it. It returns the
// targets' figures of every complete round, for ratios between targets
// of the same round (pairedCommits).
func (s *suite) alternate(ref func(round int) (float64, bool), targets []pairTarget) (rounds []map[cell]float64) {
	ratios := map[cell][]float64{}
	before, ok := ref(1)
	for round := 1; round <= s.pairedRounds() && ok; round++ {
		figs := map[cell]float64{}
		for _, tg := range targets {
			if x, ok := tg.fig(round); ok {
				figs[cell{tg.key, tg.col}] = x
			}
		}
		var after float64
		if after, ok = ref(round + 1); !ok {
			break
		}
		for c, x := range figs {
			ratios[c] = append(ratios[c], x/((before+after)/2))
		}
		rounds = append(rounds, figs)
		before = after
	}
	for c, rs := range ratios {
		slices.Sort(rs)
		s.res.set(c.key, c.col, rs[len(rs)/2])
		s.logf("  %s %s ÷ reference, rounds %.3f: median %.2f", c.key, c.col, rs, rs[len(rs)/2])
	}
	return rounds
}

// setRoundRatios sets row key, column col of every num figure of rounds
// to the median over the rounds of num ÷ den, the den figure taken in
// the same round.
func (s *suite) setRoundRatios(rounds []map[cell]float64, key string, num, den cell) {
	var rs []float64
	for _, figs := range rounds {
		x, ok1 := figs[num]
		y, ok2 := figs[den]
		if ok1 && ok2 && y > 0 {
			rs = append(rs, x/y)
		}
	}
	if len(rs) == 0 {
		return
	}
	slices.Sort(rs)
	s.res.set(key, num.col, rs[len(rs)/2])
	s.logf("  %s %s ÷ %s %s, rounds %.3f: median %.2f", num.key, num.col, den.key, den.col, rs, rs[len(rs)/2])
}

// pairedServer starts a durusbdb server of backend col on a fresh
// database for the paired figures; stop stops it and removes the
// database.
func (s *suite) pairedServer(col, label string, extra ...string) (srv *server, stop func(), err error) {
	path := filepath.Join(s.work, "db-"+label)
	srv, err = s.startServer(col, path, label, true, append([]string{"--gc-grace=24h"}, extra...)...)
	if err != nil {
		return nil, nil, err
	}
	return srv, func() {
		s.stopServer(srv, label)
		os.RemoveAll(path)
	}, nil
}

// pairedTrivial starts the trivial server of the paired figures (what
// names them in a failure, log its log file) with the small records of
// the loads; stop stops it. ok is false, the failure recorded, if it did
// not start.
func (s *suite) pairedTrivial(what, log string, extra ...string) (addr string, stop func(), ok bool) {
	p, addr, err := s.startTrivial(log, s.objs100, 100, extra...)
	if err != nil {
		s.fail(what+": trivial server", err)
		return "", nil, false
	}
	return addr, func() { s.ps.stop(p, 5*time.Second) }, true
}

// pairedLoads measures single loads at 8 connections of each durusbdb
// backend alternately with the trivial server (row loads8_paired).
func (s *suite) pairedLoads() {
	s.logf("single loads, alternating with the trivial server")
	taddr, stopTrivial, ok := s.pairedTrivial("paired loads", "trivial-paired")
	if !ok {
		return
	}
	defer stopTrivial()
	var targets []pairTarget
	for _, col := range s.backends {
		srv, stop, err := s.pairedServer(col, "paired-"+col)
		if err != nil {
			s.fail("paired loads: start "+col, err)
			continue
		}
		defer stop()
		oids, err := gen.Populate(srv.addr, s.objs100, 100, nil)
		if err != nil {
			s.fail("paired loads: populate "+col, err)
			continue
		}
		spec := gen.Spec{Addr: srv.addr, Mode: "loads", Conns: 8, Pick: gen.PickFrom(oids)}
		targets = append(targets, pairTarget{"loads8_paired", col, s.opsFig(spec, col+" loads 8 conns")})
	}
	tpick := func(rng *rand.Rand) uint64 { return 1 + rng.Uint64N(uint64(s.objs100)) }
	s.alternate(s.opsFig(gen.Spec{Addr: taddr, Mode: "loads", Conns: 8, Pick: tpick}, "trivial loads 8 conns"), targets)
}

// commitKind is one kind of issue #18's commit rows: result key, load
// generator mode, data bytes.
type commitKind struct {
	key, mode string
	size      int
}

// pairedKinds are the commit kinds of the paired rows.
func (s *suite) pairedKinds() []commitKind {
	return []commitKind{{"commits", "commits", 100}, {"updates", "updates", s.updateSize}}
}

// pairedCommitConns are the connection counts of issue #18's
// ≥ 85% / ≥ 90% targets.
var pairedCommitConns = []int{8, 32}

// pairedCommits measures issue #18's commit rows (new-object and update
// commits at 8 and 32 connections, durable and nosync) of each durusbdb
// backend alternately with the trivial server with commit token (rows
// paired_[nosync_]{commits,updates}{8,32}), and the durable ones at one
// connection alternately with their ideal (pairedOneConn). The durable
// rows also share the disk with other tenants, which the trivial server
// does not use, so the durable trivial server (bench/trivial -sync: the
// token, then one group write + fdatasync before the 'O', no storage) is
// measured in the same rounds: rows paired_durceil_KINDN (it ÷ the
// trivial server, what the disk leaves of the protocol's ceiling) and
// paired_vsdur_KINDN (durusbdb's durable figure ÷ it, the same round:
// what the storage engine costs).
func (s *suite) pairedCommits() {
	s.logf("commits, alternating with the trivial server")
	taddr, stopTrivial, ok := s.pairedTrivial("paired commits", "trivial-paired-commits")
	if !ok {
		return
	}
	defer stopTrivial()
	daddr, stopDurable, dok := s.pairedTrivial("paired commits", "trivial-durable-paired-commits",
		"-sync", filepath.Join(s.work, "trivial-durable-log"))
	if dok {
		defer stopDurable()
	}
	addrs := map[string]string{}  // prefix+col → address
	maddrs := map[string]string{} // col → the durable server's metrics address
	for _, prefix := range []string{"", "nosync_"} {
		dur := "sync"
		if prefix != "" {
			dur = "nosync"
		}
		for _, col := range s.backends {
			extra := []string{"--durability=" + dur}
			if prefix == "" {
				port, err := freePort()
				if err != nil {
					s.fail("paired commits: a metrics port for "+col, err)
					continue
				}
				maddrs[col] = fmt.Sprintf("127.0.0.1:%d", port)
				extra = append(extra, "--metrics="+maddrs[col])
			}
			srv, stop, err := s.pairedServer(col, "paired-"+dur+"-"+col, extra...)
			if err != nil {
				s.fail("paired commits: start "+col+" "+dur, err)
				continue
			}
			defer stop()
			addrs[prefix+col] = srv.addr
		}
	}
	for _, kind := range s.pairedKinds() {
		for _, conns := range pairedCommitConns {
			var targets []pairTarget
			meters := map[string]*flushMeter{} // col → the log flushes of its durable figures (8 conns)
			for _, prefix := range []string{"", "nosync_"} {
				for _, col := range s.backends {
					addr, ok := addrs[prefix+col]
					if !ok {
						continue
					}
					spec := gen.Spec{Addr: addr, Mode: kind.mode, Conns: conns, Size: kind.size}
					fig := s.opsFig(spec, fmt.Sprintf("%s %s%s %d conns", col, prefix, kind.key, conns))
					if prefix == "" && conns == flushConns {
						meters[col] = &flushMeter{s: s, maddr: maddrs[col]}
						fig = meters[col].wrap(fig)
					}
					targets = append(targets, pairTarget{fmt.Sprintf("paired_%s%s%d", prefix, kind.key, conns), col, fig})
				}
			}
			durceil := cell{fmt.Sprintf("paired_durceil_%s%d", kind.key, conns), "ceiling"}
			if dok {
				spec := gen.Spec{Addr: daddr, Mode: kind.mode, Conns: conns, Size: kind.size}
				targets = append(targets, pairTarget{durceil.key, durceil.col, s.opsFig(spec, fmt.Sprintf("trivial durable %s %d conns", kind.key, conns))})
			}
			spec := gen.Spec{Addr: taddr, Mode: kind.mode, Conns: conns, Size: kind.size}
			rounds := s.alternate(s.opsFig(spec, fmt.Sprintf("trivial %s %d conns", kind.key, conns)), targets)
			for _, col := range s.backends {
				s.setRoundRatios(rounds, fmt.Sprintf("paired_vsdur_%s%d", kind.key, conns), cell{fmt.Sprintf("paired_%s%d", kind.key, conns), col}, durceil)
			}
			for col, m := range meters {
				m.set(fmt.Sprintf("flush_%s%d", kind.key, conns), col)
			}
		}
		s.pairedOneConn(kind, taddr, addrs)
	}
}

// flushConns is the connection count whose durable paired figures also
// measure the log flush under load (rows flush_KINDN).
const flushConns = 8

// pairedOneConn measures the durable commits of kind at one connection
// of each backend (addrs: pairedCommits's servers) alternately with their
// ideal, 1 / (the trivial server's round trip + one fdatasync), both
// measured afresh in every round (row paired_KIND1): the fdatasync of a
// shared disk moved by tens of percent between the ceilings at the start
// and at the end of a run.
func (s *suite) pairedOneConn(kind commitKind, taddr string, addrs map[string]string) {
	var targets []pairTarget
	for _, col := range s.backends {
		addr, ok := addrs[col]
		if !ok {
			continue
		}
		spec := gen.Spec{Addr: addr, Mode: kind.mode, Conns: 1, Size: kind.size}
		targets = append(targets, pairTarget{fmt.Sprintf("paired_%s1", kind.key), col, s.opsFig(spec, fmt.Sprintf("%s %s 1 conn", col, kind.key))})
	}
	trivial := s.opsFig(gen.Spec{Addr: taddr, Mode: kind.mode, Conns: 1, Size: kind.size}, fmt.Sprintf("trivial %s 1 conn", kind.key))
	dir := filepath.Join(s.work, "commitc-paired")
	s.alternate(func(round int) (float64, bool) {
		rt, ok := trivial(round)
		if !ok || rt == 0 {
			return 0, false
		}
		kv, err := s.fsyncLoop(dir)
		if err != nil || kv["ops_per_s"] == 0 {
			s.fail(fmt.Sprintf("paired fdatasync loop, round %d", round), err)
			return 0, false
		}
		ideal := 1 / (1/rt + 1/kv["ops_per_s"])
		s.logf("  %-40s %10.0f syncs/s  p50 %.0f µs; 1 / (round trip + fdatasync) %.0f/s", fmt.Sprintf("fdatasync loop, round %d", round), kv["ops_per_s"], kv["p50_us"], ideal)
		return ideal, true
	}, targets)
}
