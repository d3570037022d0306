//go:build bdb

// Package repl tests durusbdb servers replicating on Berkeley DB's
// Replication Manager with real processes: each site is this test binary
// re-executed (TestMain) running service.Serve, killed with SIGKILL or
// stopped with SIGSTOP by the test. Clients speak the Durus protocol
// through internal/wire. See docs/REPLICATION.md.
package repl

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/freeport"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/server"
	"github.com/durusbdb/durusbdb/service"
)

// childEnv carries a site's siteConfig (JSON) to a re-executed child.
const childEnv = "DURUSBDB_REPL_SITE"

// siteConfig is what a site process serves.
type siteConfig struct {
	Dir        string
	Listen     string // replication address
	Peers      []string
	Init       bool
	Standalone bool // no replication: the benchmark's baseline
}

func TestMain(m *testing.M) {
	if js := os.Getenv(childEnv); js != "" {
		os.Exit(siteMain(js))
	}
	os.Exit(m.Run())
}

// siteMain serves one site until killed or its input closes. It prints
// "ready ADDR" once serving, "role ROLE MASTER_DURUS_ADDR" on every role
// change, and "resets N" when the site was reset in place (engine
// DB.Resets).
func siteMain(js string) int {
	var cfg siteConfig
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		fmt.Println("fatal", err)
		return 2
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // the parent closes stdin (or dies): stop cleanly
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	sc := service.Config{
		Dir:    cfg.Dir,
		Listen: server.ListenConfig{Host: "127.0.0.1"},
		Log:    service.LogConfig{Stderr: os.Stderr, Level: slog.LevelInfo},
		Replication: &kv.Replication{
			Listen: cfg.Listen, Peers: cfg.Peers, Init: cfg.Init,
			AckTimeout: 500 * time.Millisecond, HeartbeatMonitor: 500 * time.Millisecond,
		},
		Ready: func(a net.Addr) { say("ready %s", a) },
		Control: func(db *engine.DB, _ func() int) control.Handler {
			report := func(ri kv.RoleInfo) {
				if ri.Role == kv.RoleStandalone {
					ri.Role = kv.RoleMaster // the test's notion: takes commits
				}
				say("role %s %s", ri.Role, ri.MasterDurusAddr)
			}
			db.OnRoleChange(report)
			report(db.Role())
			go func() { // the replica's lag, change position and resets, when they change
				var last time.Duration
				var lastReported, lastResets uint64
				for ctx.Err() == nil {
					if n := db.Resets(); n != lastResets {
						lastResets = n
						say("resets %d", n)
					}
					if l := db.Role().Lag; l != last {
						last = l
						say("lag %d", l)
					}
					if r := db.ChangesReported(); r != lastReported {
						lastReported = r
						say("reported %d", r)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			return func(context.Context, control.Request, *control.Response) control.Exit {
				return control.Exit{Code: 2, Error: "no control commands in the replication test"}
			}
		},
	}
	sc.Engine.Create = true
	if cfg.Standalone {
		sc.Replication = nil
	}
	if d := os.Getenv("REPL_DURABILITY"); d != "" {
		sc.Engine.Durability, _ = kv.ParseDurability(d)
	}
	sc.Engine.GC.Mode = engine.GCManual
	if err := service.Serve(ctx, sc); err != nil {
		say("fatal %v", err)
		return 1
	}
	return 0
}

// site is a running site process, seen from the test.
type site struct {
	t    testing.TB
	name string
	cfg  siteConfig
	cmd  *exec.Cmd
	in   io.WriteCloser

	mu     sync.Mutex
	addr   string // Durus address once ready
	role   string
	master string        // master's Durus address as last reported
	lag    time.Duration // replication lag as last reported
	// reported: a replica's change position as last reported (one more
	// than the last change entry whose invalidations reached its clients).
	reported uint64
	fatal    string
	exited   bool
	// wasMaster: the site reported master once. A master that reports
	// replica was demoted: its engine resets the site in place (closes its
	// clients, reopens its handles) and reports one more reset.
	wasMaster bool
	// resets is the site's count of resets in place as last reported;
	// masterResets the count when it last reported master.
	resets, masterResets uint64
}

// startSite starts cfg's site process.
func startSite(t testing.TB, name string, cfg siteConfig) *site {
	t.Helper()
	js, _ := json.Marshal(cfg)
	logf, err := os.OpenFile(cfg.Dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	c := proc.StartChildT(t, logf, childEnv+"="+string(js))
	cmd, in, out := c.Cmd, c.Stdin, c.Stdout
	s := &site{t: t, name: name, cfg: cfg, cmd: cmd, in: in}
	go s.read(out, logf)
	t.Cleanup(func() {
		s.kill()
		if d := os.Getenv("REPL_LOGDIR"); d != "" { // keep every site's log
			b, _ := os.ReadFile(cfg.Dir + ".log")
			_ = os.WriteFile(fmt.Sprintf("%s/%s-%s-%d.log", d, t.Name(), name, s.cmd.Process.Pid), b, 0o644)
		}
		if t.Failed() {
			b, _ := os.ReadFile(cfg.Dir + ".log")
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return s
}

// read follows the child's stdout.
func (s *site) read(r io.Reader, logf *os.File) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		s.mu.Lock()
		switch {
		case len(f) >= 2 && f[0] == "ready":
			s.addr = f[1]
		case len(f) >= 2 && f[0] == "role":
			s.wasMaster = s.wasMaster || f[1] == kv.RoleMaster
			if f[1] == kv.RoleMaster {
				s.masterResets = s.resets
			}
			s.role = f[1]
			s.master = ""
			if len(f) >= 3 {
				s.master = f[2]
			}
		case len(f) >= 2 && f[0] == "lag":
			s.lag, _ = time.ParseDuration(f[1] + "ns")
		case len(f) >= 2 && f[0] == "resets":
			s.resets, _ = strconv.ParseUint(f[1], 10, 64)
		case len(f) >= 2 && f[0] == "reported":
			s.reported, _ = strconv.ParseUint(f[1], 10, 64)
		case len(f) >= 1 && f[0] == "fatal":
			s.fatal = sc.Text()
		}
		s.mu.Unlock()
	}
	_ = s.cmd.Wait()
	logf.Close()
	s.mu.Lock()
	s.exited = true
	s.mu.Unlock()
}

// state returns the site's last reported address, role and master.
func (s *site) state() (addr, role, master string, exited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr, s.role, s.master, s.exited
}

// demoted reports whether the site, once master, reported replica and
// has not finished its reset in place yet (nor exited).
func (s *site) demoted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wasMaster && s.role == kv.RoleReplica && s.resets <= s.masterResets && !s.exited
}

// resetCount returns the site's count of resets in place as last
// reported.
func (s *site) resetCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resets
}

// isMaster reports whether the site is ready and master; it fails the
// test if the site failed before serving (call it from the test's
// goroutine).
func (s *site) isMaster() bool {
	s.mu.Lock()
	fatal, ready := s.fatal, s.addr != ""
	s.mu.Unlock()
	if fatal != "" && !ready { // (a demoted master exits on purpose)
		s.t.Fatalf("%s: %s", s.name, fatal)
	}
	a, r, _, ex := s.state()
	return a != "" && r == kv.RoleMaster && !ex
}

// kill sends SIGKILL (and SIGCONT, for a stopped site) and waits for exit.
func (s *site) kill() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	testwait.Poll(10*time.Second, func() bool { _, _, _, ex := s.state(); return ex })
}

// stop closes the site's stdin, which stops its server cleanly, and waits
// for the exit (killing it after 30 s).
func (s *site) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.in.Close()
	if !testwait.Poll(30*time.Second, func() bool { _, _, _, ex := s.state(); return ex }) {
		s.t.Errorf("%s did not stop within 30 s of a clean stop; killed", s.name)
		s.kill()
	}
}

// signal sends sig to the site (proc.Signal: a SIGSTOP returns once the
// site is stopped); only a failed stop is an error of the test.
func (s *site) signal(sig syscall.Signal) {
	if err := proc.Signal(s.cmd.Process.Pid, sig); err != nil && sig == syscall.SIGSTOP {
		s.t.Errorf("%s: %v", s.name, err)
	}
}

// restart starts the site again on its directory, without Init.
func (s *site) restart(t testing.TB) *site {
	cfg := s.cfg
	cfg.Init = false
	return startSite(t, s.name, cfg)
}

// startGroup starts a group of n sites (the first creates it) and waits
// until the first is master and every other a ready replica.
func startGroup(t testing.TB, n int) []*site {
	t.Helper()
	base := t.TempDir()
	addrs := freeport.T(t, n)
	sites := make([]*site, n)
	for i := range sites {
		dir := fmt.Sprintf("%s/site%d", base, i)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		sites[i] = startSite(t, fmt.Sprintf("site%d", i), siteConfig{Dir: dir, Listen: addrs[i], Peers: peers, Init: i == 0})
		if i == 0 {
			testwait.Within(t, time.Minute, "site0 master", sites[0].isMaster)
		}
	}
	for _, s := range sites[1:] {
		testwait.Within(t, time.Minute, s.name+" ready replica", func() bool {
			a, r, _, _ := s.state()
			return a != "" && r == kv.RoleReplica
		})
	}
	return sites
}

// masterOf waits for a master among sites and returns it.
func masterOf(t testing.TB, sites []*site) *site {
	t.Helper()
	var m *site
	testwait.Within(t, time.Minute, "a master", func() bool {
		for _, s := range sites {
			if s.isMaster() {
				m = s
				return true
			}
		}
		return false
	})
	return m
}
