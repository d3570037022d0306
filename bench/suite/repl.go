package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
	"github.com/durusbdb/durusbdb/internal/freeport"
)

// errNoMaster is returned when no site of the group answers /role with 200
// within the wait.
var errNoMaster = errors.New("no master in the group")

// replSite is one site of the benchmark's replication group: its ports
// stay the same across restarts, so that the other sites' --repl-peer
// flags keep naming it.
type replSite struct {
	label       string
	dir         string
	port        int    // Durus port
	addr        string // Durus address
	metrics     string // --metrics address (GET /role)
	listen      string // --repl-listen address
	peers       []string
	p           *proc
	initialised bool // started once: no --create, no --repl-init any more
}

// replGroup is the 3-site group under test.
type replGroup struct {
	s     *suite
	sites []*replSite
	http  *http.Client
}

// replFigures measures issue #19's replication rows on a fresh 3-site
// Berkeley DB group on 127.0.0.1, beside the same binary standalone, both
// running at once: in each of a few rounds, durable new-object commits at
// 8 connections on the master and through a replica (forwarded to the
// master; "not built" if a probe commit is refused), loads at 8
// connections on the master and on a replica, and the standalone's
// commits again (rounds, replRoundsOf). Then the failover time (kill -9 of the
// master → first commit accepted by the new master) over s.replRounds
// rounds.
func (s *suite) replFigures() {
	s.logf("replication group of 3 bdb sites, beside a standalone server")
	standalone := filepath.Join(s.work, "db-repl-standalone")
	srv, err := s.startServer("bdb", standalone, "repl-standalone", true, "--gc-grace=24h")
	if err != nil {
		s.fail("start repl standalone", err)
		return
	}
	defer func() {
		s.stopServer(srv, "repl-standalone")
		os.RemoveAll(standalone)
	}()
	g, err := s.newReplGroup(3)
	if err != nil {
		s.fail("repl group", err)
		return
	}
	defer g.stop()
	if err := g.startAll(); err != nil {
		s.fail("repl group start", err)
		return
	}
	master, err := g.waitMaster(2 * time.Minute)
	if err != nil {
		s.fail("repl group start", err)
		return
	}
	g.rounds(master, srv.addr)
	g.failover()
}

// replRoundsOf is how many rounds rounds runs: the ratios of figures
// taken side by side vary by ±30% on this shared machine, so the rows
// keep medians.
func (s *suite) replRoundsOf() int {
	if s.scale == "smoke" {
		return 1
	}
	return 3
}

// rounds measures, in each round, the master's commits, the commits
// through a replica, a replica's and then the master's loads, and the
// standalone server's commits at standaloneAddr (the master's loads and
// the standalone commits also once before the first round). Each commit
// ratio divides by the mean of the standalone figures just before and
// just after it, the loads ratio a replica's figure by the mean of the
// master's just before and just after it; every row keeps the median of
// its rounds (pairedLoads does the same against the trivial server).
func (g *replGroup) rounds(master *replSite, standaloneAddr string) {
	s := g.s
	replica := g.sites[0]
	if replica == master {
		replica = g.sites[1]
	}
	oids, err := gen.Populate(master.addr, s.objs100, 100, nil)
	if err != nil {
		s.fail("repl populate", err)
		return
	}
	last := oids[len(oids)-1]
	if err := replica.p.WaitUntil(time.Minute, fmt.Sprintf("oid %d replicated to %s", last, replica.label), func() bool {
		c, err := gen.Dial(replica.addr)
		if err != nil {
			return false
		}
		defer c.Close()
		c.NetConn().SetDeadline(time.Now().Add(5 * time.Second))
		st, err := c.LoadStatus(last)
		return err == nil && st == 'O'
	}); err != nil {
		s.fail("repl loads", err)
		return
	}
	forward := true
	if st, err := commitOnce(replica.addr, 5*time.Second); err != nil || st != 'O' {
		if err == nil {
			err = fmt.Errorf("status %q", st)
		}
		s.logf("  commit through replica %s: %v: not built", replica.label, err)
		forward = false
	}
	commits := func(addr, what string, round int) (float64, bool) {
		r, ok := s.fig(gen.Spec{Addr: addr, Mode: "commits", Conns: 8, Size: 100}, fmt.Sprintf("%s commits 8 conns, round %d", what, round))
		return r.OpsPerSec(), ok
	}
	loads := func(site *replSite, round int) (float64, bool) {
		r, ok := s.fig(gen.Spec{Addr: site.addr, Mode: "loads", Conns: 8, Pick: gen.PickFrom(oids)},
			fmt.Sprintf("bdb 3-site %s loads 8 conns, round %d", site.label, round))
		return r.OpsPerSec(), ok
	}
	figs := map[string][]float64{}
	add := func(key string, x float64) { figs[key] = append(figs[key], x) }
	before, ok := commits(standaloneAddr, "bdb standalone", 0)
	if ok {
		add("repl_commits8_standalone", before)
	}
	lmBefore, oklmBefore := loads(master, 0)
	for round := 1; round <= s.replRoundsOf() && ok; round++ {
		m, okm := commits(master.addr, "bdb 3-site master", round)
		var f float64
		okf := false
		if forward {
			f, okf = commits(replica.addr, "bdb 3-site through a replica", round)
		}
		lr, oklr := loads(replica, round)
		lm, oklm := loads(master, round)
		var after float64
		if after, ok = commits(standaloneAddr, "bdb standalone", round); !ok {
			break
		}
		add("repl_commits8_standalone", after)
		sa := (before + after) / 2
		if okm {
			add("repl_commits8_master", m)
			add("repl_commits8_ratio", m/sa)
		}
		if okf {
			add("repl_commits8_replica", f)
			add("repl_commits8_replica_ratio", f/sa)
		}
		if oklmBefore && oklm && oklr && lm+lmBefore > 0 {
			add("repl_loads8_master", lm)
			add("repl_loads8_replica", lr)
			add("repl_loads8_ratio", lr/((lmBefore+lm)/2))
		}
		lmBefore, oklmBefore = lm, oklm
		before = after
	}
	for key, xs := range figs {
		slices.Sort(xs)
		s.res.set(key, "bdb", xs[len(xs)/2])
		if strings.HasSuffix(key, "_ratio") {
			s.logf("  %s, rounds %v: median %.2f", key, xs, xs[len(xs)/2])
		}
	}
	if !forward {
		s.res.setText("repl_commits8_replica", "bdb", "not built")
	}
}

// commitOnce commits one new 100-byte record at addr and returns the
// status, all within timeout.
func commitOnce(addr string, timeout time.Duration) (byte, error) {
	c, err := gen.Dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.NetConn().SetDeadline(time.Now().Add(timeout))
	oids, err := c.Alloc(1)
	if err != nil {
		return 0, fmt.Errorf("repl: alloc at %s: %w", addr, err)
	}
	st, err := c.CommitData(gen.AppendFrame(nil, oids[0], 100, nil))
	if err != nil {
		return st, fmt.Errorf("repl: commit at %s: %w", addr, err)
	}
	return st, nil
}

// failover kills the master with SIGKILL s.replRounds times and times
// each kill until a commit is accepted by the new master, restarting the
// killed site (it rejoins as a replica) before the next round.
func (g *replGroup) failover() {
	s := g.s
	var times []float64
	for round := 1; round <= s.replRounds; round++ {
		d, toMaster, err := g.failoverRound()
		if err != nil {
			s.fail(fmt.Sprintf("repl failover round %d", round), err)
			return
		}
		s.logf("  failover round %d: %.3f s (/role 200 on the new master after %.3f s)", round, d.Seconds(), toMaster.Seconds())
		times = append(times, d.Seconds())
	}
	slices.Sort(times)
	s.res.set("repl_failover_p50", "bdb", times[len(times)/2])
	s.res.set("repl_failover_max", "bdb", times[len(times)-1])
}

// failoverRound is one round of failover: kill -9, time to the first
// commit accepted by the new master (and, for the log, to its first 200 on
// /role), restart of the killed site.
func (g *replGroup) failoverRound() (el, toMaster time.Duration, err error) {
	old, err := g.waitMaster(time.Minute)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := old.p.Signal(syscall.SIGKILL); err != nil {
		return 0, 0, fmt.Errorf("repl: kill %s: %w", old.label, err)
	}
	g.s.ps.stop(old.p, 10*time.Second) // reaps it and drops it from the pid file
	ok := waitFor(time.Minute, func() bool {
		for _, st := range g.sites {
			if st == old || !g.isMaster(st) {
				continue
			}
			if toMaster == 0 {
				toMaster = time.Since(t0)
			}
			if c, err := commitOnce(st.addr, 2*time.Second); err == nil && c == 'O' {
				el = time.Since(t0)
				return true
			}
		}
		return false
	})
	if !ok {
		return 0, 0, fmt.Errorf("repl: no commit accepted within a minute of killing %s: %w", old.label, errNoMaster)
	}
	if err := g.start(old); err != nil {
		return el, toMaster, err
	}
	// The restarted site must be a replica again before the next kill, or
	// the group would lose its quorum.
	if !waitFor(2*time.Minute, func() bool { return g.role(old) == "replica" }) {
		return el, toMaster, fmt.Errorf("repl: %s did not rejoin as a replica (log %s)", old.label, old.p.LogPath())
	}
	return el, toMaster, nil
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	end := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newReplGroup picks the ports of n sites.
func (s *suite) newReplGroup(n int) (*replGroup, error) {
	g := &replGroup{s: s, http: &http.Client{Timeout: 2 * time.Second}}
	var listens []string
	all, err := freeport.Ports(3 * n) // Durus, metrics and replication of each site
	if err != nil {
		return nil, fmt.Errorf("repl: ports: %w", err)
	}
	for i := range n {
		ports := all[3*i : 3*i+3]
		st := &replSite{
			label:   fmt.Sprintf("site%d", i+1),
			dir:     filepath.Join(s.work, fmt.Sprintf("db-repl-%d", i+1)),
			port:    ports[0],
			addr:    fmt.Sprintf("127.0.0.1:%d", ports[0]),
			metrics: fmt.Sprintf("127.0.0.1:%d", ports[1]),
			listen:  fmt.Sprintf("127.0.0.1:%d", ports[2]),
		}
		listens = append(listens, st.listen)
		g.sites = append(g.sites, st)
	}
	for _, st := range g.sites {
		for _, l := range listens {
			if l != st.listen {
				st.peers = append(st.peers, l)
			}
		}
	}
	return g, nil
}

// startAll starts the first site with --repl-init, waits until it is
// master, then starts the others, which join and copy its data.
func (g *replGroup) startAll() error {
	for i, st := range g.sites {
		if err := g.start(st); err != nil {
			return err
		}
		if i == 0 {
			if _, err := g.waitMaster(2 * time.Minute); err != nil {
				return err
			}
		}
	}
	for _, st := range g.sites[1:] {
		if !waitFor(2*time.Minute, func() bool { return g.role(st) == "replica" }) {
			return fmt.Errorf("repl: %s: no replica role within 2 minutes (log %s)", st.label, st.p.LogPath())
		}
	}
	return nil
}

// start starts (or restarts) st and waits until its Durus port listens.
func (g *replGroup) start(st *replSite) error {
	s := g.s
	fresh := !st.initialised
	if fresh {
		if err := os.MkdirAll(st.dir, 0o755); err != nil {
			return fmt.Errorf("repl: %w", err)
		}
	}
	// The three sites share this machine's one disk: the master's flush
	// after the acknowledgement, not during it (docs/REPLICATION.md).
	extra := []string{"--gc-grace=24h", "--metrics", st.metrics, "--repl-listen", st.listen, "--repl-flush-during-acks=false"}
	for _, p := range st.peers {
		extra = append(extra, "--repl-peer", p)
	}
	if fresh && st == g.sites[0] {
		extra = append(extra, "--repl-init")
	}
	p, err := s.ps.start("bdb", s.logPath("server-repl-"+st.label), nil, s.serveArgv("bdb", st.dir, st.port, fresh, extra)...)
	if err != nil {
		return fmt.Errorf("repl: start %s: %w", st.label, err)
	}
	st.p, st.initialised = p, true
	if err := waitPort(p, st.addr, 2*time.Minute); err != nil {
		return fmt.Errorf("repl: start %s: %w", st.label, err)
	}
	return nil
}

// roleOf returns the HTTP status and the "role" of st's GET /role (0 and
// "" when it does not answer).
func (g *replGroup) roleOf(st *replSite) (int, string) {
	resp, err := g.http.Get("http://" + st.metrics + "/role")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var v struct {
		Role string `json:"role"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, v.Role
}

// role returns the "role" of st's GET /role ("" when it does not answer).
func (g *replGroup) role(st *replSite) string {
	_, r := g.roleOf(st)
	return r
}

// isMaster reports whether st answers GET /role with 200 (only the master
// does).
func (g *replGroup) isMaster(st *replSite) bool {
	code, _ := g.roleOf(st)
	return code == http.StatusOK
}

// waitMaster returns the site that answers /role with 200.
func (g *replGroup) waitMaster(timeout time.Duration) (*replSite, error) {
	var m *replSite
	if waitFor(timeout, func() bool {
		for _, st := range g.sites {
			if st.p != nil && !st.p.Exited() && g.isMaster(st) {
				m = st
				return true
			}
		}
		return false
	}) {
		return m, nil
	}
	return nil, fmt.Errorf("repl: within %v: %w", timeout, errNoMaster)
}

// stop ends every site, the replicas first (a master stopped first would
// make them hold an election on the way down), and removes their
// directories.
func (g *replGroup) stop() {
	var replicas, masters []*replSite
	for _, st := range g.sites {
		if st.p != nil && !st.p.Exited() && g.isMaster(st) {
			masters = append(masters, st)
		} else {
			replicas = append(replicas, st)
		}
	}
	for _, st := range append(replicas, masters...) {
		if st.p != nil {
			g.s.ps.stop(st.p, 15*time.Second)
		}
		os.RemoveAll(st.dir)
	}
}

// replRows declares the replication rows (need bdb when the section runs
// on a bdb build).
func (s *suite) replRows(add rowAdder, need []string) {
	n := s.replRoundsOf()
	add("repl_commits8_standalone", fmt.Sprintf("commits of 1 small record, 8 conns, durable, standalone, running beside the 3-site group (median of %d figures: before and after each round)", n+1), "commits/s", false, need, "")
	add("repl_commits8_master", fmt.Sprintf("  the same on the master of a 3-site replication group (quorum-acknowledged; median of %d rounds)", n), "commits/s", false, need, "")
	add("repl_commits8_ratio", "  master ÷ the standalone figures just before and after it, median of the rounds (target ≥ 0.50)", "ratio", false, need, "")
	add("repl_commits8_replica", fmt.Sprintf("  the same sent through a replica (forwarded to the master; median of %d rounds)", n), "commits/s", false, need, "")
	add("repl_commits8_replica_ratio", "  through a replica ÷ the standalone figures just before and after it, median (target ≥ 0.50)", "ratio", false, need, "")
	add("repl_loads8_master", fmt.Sprintf("loads, 8 conns, 100 B records, master of the 3-site group (median of %d rounds)", n), "loads/s", false, need, "")
	add("repl_loads8_replica", "  the same on a replica", "loads/s", false, need, "")
	add("repl_loads8_ratio", "  replica ÷ the master's figures just before and after it, median of the rounds (target ≥ 0.90)", "ratio", false, need, "")
	add("repl_failover_p50", fmt.Sprintf("failover: kill -9 of the master → first commit accepted by the new master, p50 of %d rounds", s.replRounds), "s", true, need, "")
	add("repl_failover_max", fmt.Sprintf("  max of those %d rounds", s.replRounds), "s", true, need, "")
}

// replTargets adds issue #19's verdicts from the ratio rows (medians of
// side-by-side rounds): replicated commits, on the master and through a
// replica, ≥ 50% of standalone, replica loads ≥ 90% of master loads.
func (s *suite) replTargets(line func(string, func(string) verdict), pc func(float64) string) {
	r := s.res
	for _, t := range []struct {
		label, ratio string
		want         float64
	}{
		{"durable commits/s at 8 conns on the master of a 3-site group ≥ 50% of standalone", "repl_commits8_ratio", 0.5},
		{"the same commits sent through a replica ≥ 50% of standalone", "repl_commits8_replica_ratio", 0.5},
		{"loads/s at 8 conns on a replica ≥ 90% of the master's", "repl_loads8_ratio", 0.9},
	} {
		line(t.label, func(col string) verdict {
			x, ok := r.get(t.ratio, col)
			return verdict{pc(x), ok && x >= t.want, ok}
		})
	}
}
