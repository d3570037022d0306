//go:build bdb

package bdb_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/internal/freeport"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/kv"
)

// siteProc is a replication site running in a child process (the test
// binary re-executed with BDB_REPL_SITE, see replSiteMain).
type siteProc struct {
	t     testing.TB
	name  string
	cfg   siteConfig
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // replies (acks go to acked)
	bg    chan string // results of putbg ("bgput" lines)
	dead  chan struct{}

	mu         sync.Mutex
	acked      map[string]int // storm key prefix → acknowledged commits
	stormEnded int            // storm goroutines that stopped on an error
}

// startSite starts a site process and waits for its "ready".
func startSite(t testing.TB, name string, cfg siteConfig) *siteProc {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := proc.StartChildT(t, os.Stderr, "BDB_REPL_SITE="+string(js))
	cmd, stdin, stdout := c.Cmd, c.Stdin, c.Stdout
	p := &siteProc{t: t, name: name, cfg: cfg, cmd: cmd, stdin: stdin,
		lines: make(chan string, 16), bg: make(chan string, 16), dead: make(chan struct{}), acked: map[string]int{}}
	t.Cleanup(p.kill)
	go p.read(stdout)
	if line := p.next(60 * time.Second); line != "ready" {
		t.Fatalf("site %s: start: %q", name, line)
	}
	return p
}

// read routes the child's output: acks into acked, the rest to lines.
func (p *siteProc) read(r io.Reader) {
	defer close(p.dead)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "ack "); ok {
			var g string
			var i int
			fmt.Sscan(rest, &g, &i)
			p.mu.Lock()
			p.acked[g] = max(p.acked[g], i+1)
			p.mu.Unlock()
			continue
		}
		if rest, ok := strings.CutPrefix(line, "bgput "); ok {
			p.bg <- rest
			continue
		}
		if strings.HasPrefix(line, "stormerr ") {
			p.mu.Lock()
			p.stormEnded++
			p.mu.Unlock()
			continue
		}
		p.lines <- line
	}
}

// next returns the next reply line, failing the test after d.
func (p *siteProc) next(d time.Duration) string {
	p.t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-p.dead:
		p.t.Fatalf("site %s exited", p.name)
	case <-time.After(d):
		p.t.Fatalf("site %s: no reply within %v", p.name, d)
	}
	return ""
}

// do sends a command and returns its reply.
func (p *siteProc) do(format string, args ...any) string {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.stdin, format+"\n", args...); err != nil {
		p.t.Fatalf("site %s: send: %v", p.name, err)
	}
	return p.next(60 * time.Second)
}

// status returns the site's role and whether it is synced.
func (p *siteProc) status() (role string, synced bool) {
	p.t.Helper()
	f := strings.Fields(p.do("status"))
	if len(f) < 3 {
		p.t.Fatalf("site %s: status: %q", p.name, f)
	}
	return f[1], f[2] == "true"
}

// kill SIGKILLs the process (if still running) and reaps it.
func (p *siteProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// signal sends sig to the site (proc.Signal: a SIGSTOP returns once the
// site is stopped).
func (p *siteProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := proc.Signal(p.cmd.Process.Pid, sig); err != nil {
		p.t.Fatal(err)
	}
}

// ackedCounts returns, per storm goroutine, how many commits were
// acknowledged.
func (p *siteProc) ackedCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for g, n := range p.acked {
		m[g] = n
	}
	return m
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startGroup starts n sites: the first creates the group and becomes
// master, then the others join through it; it returns once every site is
// synced.
func startGroup(t testing.TB, n int, tune func(*siteConfig)) []*siteProc {
	t.Helper()
	addrs := freeport.T(t, n)
	cfgs := make([]siteConfig, n)
	for i := range cfgs {
		cfgs[i] = siteConfig{Dir: t.TempDir(), Listen: addrs[i], Init: i == 0}
		for j, a := range addrs {
			if j != i {
				cfgs[i].Peers = append(cfgs[i].Peers, a)
			}
		}
		if tune != nil {
			tune(&cfgs[i])
		}
	}
	sites := []*siteProc{startSite(t, "site0", cfgs[0])}
	waitFor(t, 30*time.Second, "site0 master", func() bool { r, _ := sites[0].status(); return r == "master" })
	for i := 1; i < n; i++ {
		sites = append(sites, startSite(t, "site"+strconv.Itoa(i), cfgs[i]))
	}
	for _, s := range sites[1:] {
		waitFor(t, 60*time.Second, s.name+" synced replica", func() bool {
			r, ok := s.status()
			return r == "replica" && ok
		})
	}
	return sites
}

// master returns the one site that reports itself master, or nil when
// none does or, for a moment, two do (an old master not yet demoted after
// its successor's election).
func master(t testing.TB, sites []*siteProc) *siteProc {
	t.Helper()
	var m *siteProc
	for _, s := range sites {
		if r, _ := s.status(); r == "master" {
			if m != nil {
				t.Logf("two masters for now: %s and %s", m.name, s.name)
				return nil
			}
			m = s
		}
	}
	return m
}

// TestReplGroup forms a group of three real processes: one master, two
// synced replicas that see its commits, refuse writes with ErrNotMaster
// and name the master's address.
func TestReplGroup(t *testing.T) {
	sites := startGroup(t, 3, nil)
	if m := master(t, sites); m != sites[0] {
		t.Fatalf("master is %v, want site0", m)
	}
	if got := sites[0].do("put k1 v1"); got != "ok" {
		t.Fatalf("put on master: %s", got)
	}
	for _, s := range sites[1:] {
		waitFor(t, 10*time.Second, s.name+" sees k1", func() bool { return s.do("get k1") == "val v1" })
		if got := s.do("put k2 v2"); got != "notmaster" {
			t.Fatalf("put on replica %s: %s, want notmaster", s.name, got)
		}
		if got := s.do("master"); got != "master "+sites[0].cfg.Listen {
			t.Fatalf("replica %s: %s, want master %s", s.name, got, sites[0].cfg.Listen)
		}
	}
}

// replicasStopped starts a group of three sites with the given ack
// timeout, commits once with every site running, then stops (SIGSTOP)
// both replicas; sites[0] is the master.
func replicasStopped(t *testing.T, ackTimeout time.Duration) []*siteProc {
	t.Helper()
	sites := startGroup(t, 3, func(c *siteConfig) { c.AckTimeout = ackTimeout })
	if got := sites[0].do("put before v"); got != "ok" {
		t.Fatalf("put with replicas running: %s", got)
	}
	for _, s := range sites[1:] {
		s.signal(syscall.SIGSTOP)
	}
	return sites
}

// TestReplNoSyncCommitWaits: a DB_TXN_NOSYNC commit on a master waits for
// the replicas' acknowledgement and reports PERM_FAILED as a durable one
// does (log_put marks every commit record permanent, whatever its sync
// flag), so a kv.NoSync transaction of a replicated DB (the collector's
// batches) is no more lost in a failover than the apply runs.
func TestReplNoSyncCommitWaits(t *testing.T) {
	sites := replicasStopped(t, 300*time.Millisecond)
	start := time.Now()
	got := sites[0].do("putnosync lonely v")
	waited := time.Since(start)
	for _, s := range sites[1:] {
		s.signal(syscall.SIGCONT)
	}
	if got != "permfailed" || waited < 250*time.Millisecond {
		t.Fatalf("NoSync commit with both replicas stopped: %s after %v, want permfailed after the 300 ms ack timeout", got, waited)
	}
}

// TestReplPermFailed stops both replicas: the master's commit is applied
// locally but acknowledged by nobody, and Commit returns ErrPermFailed
// instead of success.
func TestReplPermFailed(t *testing.T) {
	sites := replicasStopped(t, 300*time.Millisecond)
	m := sites[0]
	got := m.do("put lonely v")
	for _, s := range sites[1:] {
		s.signal(syscall.SIGCONT)
	}
	if got != "permfailed" {
		t.Fatalf("put with both replicas stopped: %s, want permfailed", got)
	}
	if f := strings.Fields(m.do("status")); len(f) < 4 || f[3] == "0" {
		t.Fatalf("status after a perm failure: %v, want a nonzero count", f)
	}
	// The group recovers once the replicas run again.
	waitFor(t, 30*time.Second, "a quorum-acknowledged commit after SIGCONT", func() bool {
		mm := master(t, sites)
		return mm != nil && mm.do("put after v") == "ok"
	})
}

// logLSNs returns a site's log end and how far its log is known synced
// (DB_LOG_STAT's st_cur_* and st_disk_*).
func (p *siteProc) logLSNs() (end, synced [2]uint64) {
	p.t.Helper()
	f := strings.Fields(p.do("logstat"))
	if len(f) != 5 {
		p.t.Fatalf("site %s: logstat: %q", p.name, f)
	}
	var n [4]uint64
	for i := range n {
		v, err := strconv.ParseUint(f[i+1], 10, 32)
		if err != nil {
			p.t.Fatalf("site %s: logstat: %q", p.name, f)
		}
		n[i] = v
	}
	return [2]uint64{n[0], n[1]}, [2]uint64{n[2], n[3]}
}

// lsnBefore reports whether LSN a is before b.
func lsnBefore(a, b [2]uint64) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }

// TestReplFlushDuringAcks: a master's durable commit has its own log
// flushed while it still waits for the replicas' acknowledgement (both
// replicas stopped, a 4 s ack timeout): the log is synced past where it
// ended before the commit. libdb alone flushes only after the wait
// (bdb/ackflush.go).
func TestReplFlushDuringAcks(t *testing.T) {
	sites := replicasStopped(t, 4*time.Second)
	m := sites[0]
	end0, synced0 := m.logLSNs()
	if lsnBefore(end0, synced0) {
		t.Fatalf("log synced to %v, beyond its end %v", synced0, end0)
	}
	start := time.Now()
	if got := m.do("putbg waiting v"); got != "started" {
		t.Fatalf("putbg: %s", got)
	}
	var synced [2]uint64
	flushed := false
	for time.Since(start) < 2*time.Second {
		if _, synced = m.logLSNs(); lsnBefore(end0, synced) {
			flushed = true
			break
		}
		select {
		case r := <-m.bg:
			t.Fatalf("the commit returned (%s) after %v with both replicas stopped and a 4 s ack timeout", r, time.Since(start))
		case <-time.After(10 * time.Millisecond):
		}
	}
	waited := time.Since(start)
	for _, s := range sites[1:] {
		s.signal(syscall.SIGCONT)
	}
	select {
	case r := <-m.bg:
		if r != "ok" && r != "permfailed" {
			t.Fatalf("the commit: %s", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the commit did not return within 30 s of SIGCONT")
	}
	if !flushed {
		t.Fatalf("during the acknowledgement wait (%v) the log stayed synced to %v, before the commit's records (log end %v before it)", waited, synced, end0)
	}
}

// TestReplPermFailedWhileJoining: a group configured for three sites of
// which only two have joined yet. libdb's QUORUM policy then asks for no
// acknowledgement at all (one other site, 2SITE_STRICT: 1/2 = 0 acks,
// repmgr_msg.c __repmgr_send), so a commit on the master alone would be
// answered while the one replica is stopped; the site asks for every
// known site's acknowledgement until a quorum of the configured group is
// in it (ackPolicyFor), and such a commit fails with ErrPermFailed.
func TestReplPermFailedWhileJoining(t *testing.T) {
	addrs := freeport.T(t, 3)
	cfg := func(i int) siteConfig {
		c := siteConfig{Dir: t.TempDir(), Listen: addrs[i], Init: i == 0, AckTimeout: 300 * time.Millisecond}
		for j, a := range addrs {
			if j != i {
				c.Peers = append(c.Peers, a)
			}
		}
		return c
	}
	m := startSite(t, "site0", cfg(0))
	waitFor(t, 30*time.Second, "site0 master", func() bool { r, _ := m.status(); return r == "master" })
	r := startSite(t, "site1", cfg(1)) // site2 never starts
	waitFor(t, 60*time.Second, "site1 synced replica", func() bool { st, ok := r.status(); return st == "replica" && ok })
	waitFor(t, 30*time.Second, "the master counting site1 in the group", func() bool { return m.do("nsites") == "nsites 2" })
	if got := m.do("put joined v"); got != "ok" {
		t.Fatalf("put with the replica running: %s", got)
	}
	r.signal(syscall.SIGSTOP)
	got := m.do("put alone v")
	r.signal(syscall.SIGCONT)
	if got != "permfailed" {
		t.Fatalf("put with the only joined replica stopped: %s, want permfailed (a quorum of three sites is two)", got)
	}
}

// TestReplFailover takes the master away at a random moment of a commit
// storm, DURUSBDB_REPL_ROUNDS times (default 2), by kill -9 in even rounds
// and SIGSTOP in odd ones: a replica is elected and accepts commits, every
// acknowledged commit is on it, and the old master, restarted (killed) or
// continued (stopped), is a replica that holds them too.
func TestReplFailover(t *testing.T) {
	rounds := 2
	if v := os.Getenv("DURUSBDB_REPL_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("DURUSBDB_REPL_ROUNDS=%q", v)
		}
		rounds = n
	}
	var ack time.Duration
	if v := os.Getenv("DURUSBDB_REPL_ACK_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("DURUSBDB_REPL_ACK_TIMEOUT=%q: %v", v, err)
		}
		ack = d
	}
	sites := startGroup(t, 3, func(c *siteConfig) { c.AckTimeout = ack })
	acked := map[string]int{}
	var kills, stops []time.Duration
	for r := range rounds {
		if r%2 == 0 {
			kills = append(kills, killRound(t, sites, r, acked))
		} else {
			stops = append(stops, stopRound(t, sites, r, acked))
		}
	}
	for _, c := range []struct {
		how   string
		times []time.Duration
	}{{"kill -9", kills}, {"SIGSTOP", stops}} {
		if len(c.times) > 0 {
			slices.Sort(c.times)
			t.Logf("FAILOVER %s rounds=%d →first commit on the new master p50=%v max=%v",
				c.how, len(c.times), c.times[len(c.times)/2], c.times[len(c.times)-1])
		}
	}
}

// stormMaster finds the master and starts a storm of 4 committers on it
// (keys r<r>-g<g>-<i>), returning once 20 to 220 commits were acknowledged.
func stormMaster(t *testing.T, sites []*siteProc, r int) *siteProc {
	t.Helper()
	var m *siteProc
	waitFor(t, 30*time.Second, "a master", func() bool { m = master(t, sites); return m != nil })
	if got := m.do("storm 4 r%d-g", r); got != "ok" {
		t.Fatalf("storm: %s", got)
	}
	want := 20 + rand.IntN(200)
	prefix := fmt.Sprintf("r%d-", r)
	waitFor(t, 30*time.Second, "acknowledged commits", func() bool {
		n := 0
		for p, c := range m.ackedCounts() {
			if strings.HasPrefix(p, prefix) {
				n += c
			}
		}
		return n >= want
	})
	return m
}

// successor waits for a master among rest that accepts a commit of key,
// logging the times from since; it returns the master and the time to
// its first accepted commit.
func successor(t *testing.T, rest []*siteProc, since time.Time, what, key string) (*siteProc, time.Duration) {
	t.Helper()
	var nm *siteProc
	waitFor(t, 30*time.Second, "a new master", func() bool { nm = master(t, rest); return nm != nil })
	elected := time.Since(since)
	waitFor(t, 30*time.Second, "a new master accepting a commit", func() bool {
		nm = master(t, rest)
		return nm != nil && nm.do("put %s v", key) == "ok"
	})
	took := time.Since(since)
	t.Logf("%s → %s master after %v, first commit accepted after %v", what, nm.name, elected, took)
	return nm, took
}

// without returns sites except s.
func without(sites []*siteProc, s *siteProc) []*siteProc {
	var rest []*siteProc
	for _, x := range sites {
		if x != s {
			rest = append(rest, x)
		}
	}
	return rest
}

// killRound kills the master under a storm, checks its successor, and
// restarts it in place in sites; it returns the failover time.
func killRound(t *testing.T, sites []*siteProc, r int, acked map[string]int) time.Duration {
	t.Helper()
	old := stormMaster(t, sites, r)
	old.signal(syscall.SIGKILL)
	killed := time.Now()
	<-old.dead
	maps.Copy(acked, old.ackedCounts())
	key := fmt.Sprintf("failover%d", r)
	nm, took := successor(t, without(sites, old), killed, fmt.Sprintf("round %d: kill -9 of %s", r, old.name), key)
	checkAcked(t, nm, acked)

	old.kill()
	cfg := old.cfg
	cfg.Init = false
	back := startSite(t, fmt.Sprintf("%s+%d", strings.Split(old.name, "+")[0], r), cfg)
	awaitReplica(t, back, key)
	checkAcked(t, back, acked)
	sites[slices.Index(sites, old)] = back
	return took
}

// stopRound SIGSTOPs the master under a storm, checks its successor, then
// continues it: it must become a synced replica whose storm ended without
// one more acknowledged commit missing anywhere. It returns the failover
// time.
func stopRound(t *testing.T, sites []*siteProc, r int, acked map[string]int) time.Duration {
	t.Helper()
	old := stormMaster(t, sites, r)
	old.signal(syscall.SIGSTOP)
	stopped := time.Now()
	key := fmt.Sprintf("failover%d", r)
	nm, took := successor(t, without(sites, old), stopped, fmt.Sprintf("round %d: SIGSTOP of %s", r, old.name), key)
	old.signal(syscall.SIGCONT)
	awaitReplica(t, old, key)
	waitFor(t, 30*time.Second, "the old master's storm ended", func() bool {
		old.mu.Lock()
		defer old.mu.Unlock()
		return old.stormEnded >= 4
	})
	maps.Copy(acked, old.ackedCounts())
	checkAcked(t, nm, acked)
	checkAcked(t, old, acked)
	old.mu.Lock()
	old.stormEnded = 0
	old.mu.Unlock()
	return took
}

// awaitReplica waits until the old master s is a synced replica that has
// the new master's commit of key.
func awaitReplica(t *testing.T, s *siteProc, key string) {
	t.Helper()
	waitFor(t, 60*time.Second, s.name+" a synced replica", func() bool {
		r, ok := s.status()
		return r == "replica" && ok
	})
	waitFor(t, 10*time.Second, s.name+" sees the new master's commit", func() bool {
		return s.do("get %s", key) == "val v"
	})
}

// checkAcked fails unless every acknowledged storm commit is on s.
func checkAcked(t *testing.T, s *siteProc, acked map[string]int) {
	t.Helper()
	total := 0
	for prefix, n := range acked {
		total += n
		if got := s.do("missing %s %d", prefix, n); got != "missing 0 -1" {
			t.Fatalf("%s: acknowledged commits %s0..%d lost: %s", s.name, prefix, n-1, got)
		}
	}
	t.Logf("%s holds all %d acknowledged commits", s.name, total)
}

// TestReplReadYourWrites: a replica waits with TxnApplied for the commit
// token of a master's commit and then reads it without polling.
func TestReplReadYourWrites(t *testing.T) {
	sites := startGroup(t, 3, nil)
	for i := range 20 {
		tok, ok := strings.CutPrefix(sites[0].do("puttoken ryw%d v%d", i, i), "token ")
		if !ok {
			t.Fatalf("puttoken: %s", tok)
		}
		for _, s := range sites[1:] {
			if got := s.do("applied %s 5000", tok); got != "ok" {
				t.Fatalf("%s: txn_applied: %s", s.name, got)
			}
			if got, want := s.do("get ryw%d", i), fmt.Sprintf("val v%d", i); got != want {
				t.Fatalf("%s: after txn_applied: %s, want %s", s.name, got, want)
			}
		}
	}
}

// TestReplRemoveSite removes a dead site from the group on the master;
// removing it again fails, and the two remaining sites keep committing.
func TestReplRemoveSite(t *testing.T) {
	sites := startGroup(t, 3, nil)
	gone := sites[2]
	gone.kill()
	if got := sites[0].do("remove %s", gone.cfg.Listen); got != "ok" {
		t.Fatalf("remove %s: %s", gone.cfg.Listen, got)
	}
	if got := sites[0].do("put afterremove v"); got != "ok" {
		t.Fatalf("put after removal: %s", got)
	}
	waitFor(t, 10*time.Second, "remaining replica sees the commit", func() bool {
		return sites[1].do("get afterremove") == "val v"
	})
}

// TestReplLocalSiteRemoved: a live site the master removes from the group
// learns it (DB_EVENT_REP_LOCAL_SITE_REMOVED: ReplStatus.Removed), so that
// the engine can stop serving a directory that no longer follows the
// group.
func TestReplLocalSiteRemoved(t *testing.T) {
	sites := startGroup(t, 3, nil)
	gone := sites[2]
	if got := gone.do("removed"); got != "removed false" {
		t.Fatalf("before the removal: %s", got)
	}
	if got := sites[0].do("remove %s", gone.cfg.Listen); got != "ok" {
		t.Fatalf("remove %s: %s", gone.cfg.Listen, got)
	}
	waitFor(t, 30*time.Second, gone.name+" told of its removal", func() bool {
		return gone.do("removed") == "removed true"
	})
}

// TestReplOptionsRefused: a two-site group without AllowTwoSites, a bad
// address and a read-only replicated open are refused before anything
// starts.
func TestReplOptionsRefused(t *testing.T) {
	dir := t.TempDir()
	two := freeport.T(t, 2)
	cases := []struct {
		name string
		opts bdb.EnvOptions
		is   error
		msg  string
	}{
		{"two sites", bdb.EnvOptions{Repl: &bdb.ReplOptions{Listen: two[0], Peers: two[1:]}}, bdb.ErrTwoSites, "two-site"},
		{"bad listen", bdb.EnvOptions{Repl: &bdb.ReplOptions{Listen: "nohostport"}}, nil, "nohostport"},
		{"read-only", bdb.EnvOptions{ReadOnly: true, Repl: &bdb.ReplOptions{Listen: freeport.T(t, 1)[0], Init: true}}, nil, "writable"},
	}
	for _, c := range cases {
		e, err := bdb.OpenEnv(dir, c.opts)
		if err == nil {
			e.Close()
			t.Fatalf("%s: opened", c.name)
		}
		if c.is != nil && !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s: %v, want %v mentioning %q", c.name, err, c.is, c.msg)
		}
	}
}

// TestReplJoinNoPeerNamesPeers: a new site none of whose peers answers
// fails, after its start timeout, naming the --repl-peer addresses and
// what to check (it said only libdb's DB_REP_UNAVAIL).
func TestReplJoinNoPeerNamesPeers(t *testing.T) {
	ports := freeport.T(t, 3)
	opts := bdb.EnvOptions{CacheSize: 8 << 20, Repl: &bdb.ReplOptions{Listen: ports[0], Peers: ports[1:], StartTimeout: time.Second}}
	e, err := bdb.OpenEnv(t.TempDir(), opts)
	if err == nil {
		e.Close()
		t.Fatal("joined a group none of whose sites runs")
	}
	for _, want := range []string{"--repl-peer", ports[1], ports[2], "a member of the group is running"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("join error %q lacks %q", err, want)
		}
	}
}

// TestReplSingleSite opens a one-site group in this process: it becomes
// master, names itself as master, commits with a token that TxnApplied
// finds applied, and closes cleanly (event loop and queue released).
func TestReplSingleSite(t *testing.T) {
	e, addr, st := openSingleMaster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !st.Synced {
		t.Fatalf("master not synced: %+v", st)
	}
	waitFor(t, 10*time.Second, "master address", func() bool { a, err := e.MasterAddr(); return err == nil && a == addr })
	d, err := e.OpenDBReplicated(ctx, "data", bdb.DBOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := e.Begin(bdb.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(tx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	tok, err := tx.CommitToken(kv.Sync)
	if err != nil {
		t.Fatal(err)
	}
	if tok == (bdb.CommitToken{}) {
		t.Fatal("empty commit token")
	}
	if err := e.TxnApplied(tok, time.Second); err != nil {
		t.Fatalf("txn_applied on the master: %v", err)
	}
	// Without DB_MULTIVERSION a snapshot transaction is a locking read.
	rt, err := e.Begin(bdb.TxnOptions{Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := d.Get(rt, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("snapshot read in a replicated environment: %q %v", v, err)
	}
	if err := rt.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if st := e.ReplStatus(); st.Role != bdb.RoleMaster {
		t.Fatalf("status after close: %+v", st)
	}
}

// TestReplPermFailedRolledBack: a commit only the master has (both
// replicas killed, ErrPermFailed) is rolled back when that master, stopped
// while the restarted replicas elect a successor, comes back: it is on no
// site afterwards, while the successor's commit is on every site. Handles
// the rollback invalidated answer ErrHandleDead and are reopened. (With
// SIGSTOP'd replicas instead, the commit waits in their socket buffers and
// may well survive: a PERM_FAILED commit's outcome is unknown.)
func TestReplPermFailedRolledBack(t *testing.T) {
	sites := startGroup(t, 3, func(c *siteConfig) { c.AckTimeout = 300 * time.Millisecond })
	old := sites[0]
	if got := old.do("put base v"); got != "ok" {
		t.Fatalf("put: %s", got)
	}
	for _, s := range sites[1:] {
		waitFor(t, 10*time.Second, s.name+" has base", func() bool { return s.do("get base") == "val v" })
		s.kill()
	}
	if got := old.do("put lonely v"); got != "permfailed" {
		t.Fatalf("put with both replicas dead: %s, want permfailed", got)
	}
	if got := old.do("get lonely"); got != "val v" {
		t.Fatalf("the unacknowledged commit is not applied on its master: %s", got)
	}
	old.signal(syscall.SIGSTOP)
	var back []*siteProc
	for _, s := range sites[1:] {
		back = append(back, startSite(t, s.name+"+", s.cfg))
	}
	var nm *siteProc
	waitFor(t, 60*time.Second, "a successor accepting a commit", func() bool {
		nm = master(t, back)
		return nm != nil && nm.do("put successor v") == "ok"
	})
	old.signal(syscall.SIGCONT)
	waitFor(t, 60*time.Second, "old master demoted to a synced replica", func() bool {
		r, ok := old.status()
		return r == "replica" && ok
	})
	dead := 0
	for _, s := range append(back, old) {
		waitFor(t, 10*time.Second, s.name+" has the successor's commit", func() bool {
			got := s.do("get successor")
			if got == "handledead" {
				dead++
			}
			return got == "val v"
		})
		if got := s.do("get lonely"); got != "notfound" {
			t.Fatalf("%s: the unacknowledged commit survived: %s", s.name, got)
		}
	}
	if dead == 0 {
		t.Fatal("the rollback invalidated no handle of the old master (no ErrHandleDead)")
	}
	t.Logf("rollback seen; ErrHandleDead answered %d times", dead)
}

// openSingleMaster opens a one-site replication group (--repl-init) in a
// temporary directory, closed at the test's end, and waits until it is
// master; it returns the environment, its replication address and the
// status that showed it master.
func openSingleMaster(t *testing.T) (*bdb.Env, string, bdb.ReplStatus) {
	t.Helper()
	addr := freeport.T(t, 1)[0]
	e, err := bdb.OpenEnv(t.TempDir(), bdb.EnvOptions{CacheSize: 8 << 20, Repl: &bdb.ReplOptions{Listen: addr, Init: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.WaitRepl(ctx, func(s bdb.ReplStatus) bool { return s.Role == bdb.RoleMaster })
	if err != nil {
		t.Fatal(err)
	}
	return e, addr, st
}
