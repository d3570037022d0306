//go:build bdb

package repl

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
	"github.com/durusbdb/durusbdb/kv"
)

// TestReplStoppedMasterResetInPlace: the master of a 3-site group is
// stopped (SIGSTOP) under a commit storm, a new master is elected and
// takes commits, and the old one is continued. The loser of the election
// that follows the two masters' meeting (the old master, as a rule: the
// new one's log is ahead) is reset in place: the same process ends a
// replica, its earlier client connection is closed (its cache may hold
// commits the rollback removed), and it serves every acknowledged commit,
// the new master's included. At the end every site holds the same records
// (db_dump of every database).
func TestReplStoppedMasterResetInPlace(t *testing.T) {
	sites := startGroup(t, 3)
	first := append([]*site(nil), sites...) // restarted sites would replace these
	m := sites[0]
	heads := setupRoot(t, dial(t, m), stormConns)
	mc := dialLoaded(t, m)
	addr, _, _, _ := m.state()
	done := make(chan []ackedRec, 1)
	quit := make(chan struct{})
	go func() { done <- storm(addr, heads, 0, quit) }()
	// The stop lands among the storm's commits, once a replica has
	// followed some of them.
	testwait.Within(t, time.Minute, "the storm's commits on "+sites[1].name, func() bool {
		sites[1].mu.Lock()
		defer sites[1].mu.Unlock()
		return sites[1].reported > 100
	})
	m.signal(syscall.SIGSTOP)
	nm := masterOf(t, sites[1:])
	firstCommit(t, nm, heads[0])
	close(quit)
	all := <-done
	// The new master's own commits, which the old one never saw.
	nc := dial(t, nm)
	for i := range 50 {
		a, err := commitNew(nc, heads[1], fmt.Appendf(nil, "new master %d", i))
		if err != nil {
			t.Fatalf("commit %d on the new master %s: %v", i, nm.name, err)
		}
		all = append(all, a)
	}
	nmc := dialLoaded(t, nm)
	m.signal(syscall.SIGCONT)

	settle(t, sites, all, 0)
	for i, s := range sites {
		if s != first[i] {
			t.Fatalf("%s exited and was restarted: a reset in place keeps the process", s.name)
		}
	}
	reset := 0
	for _, c := range []struct {
		s  *site
		cl *wire.Conn
	}{{m, mc}, {nm, nmc}} {
		if c.s.resetCount() == 0 {
			continue
		}
		reset++
		if _, role, _, _ := c.s.state(); role != kv.RoleReplica {
			t.Errorf("%s was reset and reports %s, want replica", c.s.name, role)
		}
		if st, _, err := c.cl.Load(0); err == nil {
			t.Errorf("%s's client connection from before the reset still answers (%q): its cache may hold rolled-back records", c.s.name, st)
		} else {
			t.Logf("%s reset in place (pid %d); its earlier client: %v", c.s.name, c.s.cmd.Process.Pid, err)
		}
	}
	if reset == 0 {
		t.Fatalf("neither %s nor %s was reset in place", m.name, nm.name)
	}
	if m.resetCount() == 0 {
		t.Logf("%s won the election after its continuation; %s was the demoted master", m.name, nm.name)
	}
	sameEverywhere(t, sites, all)
}

// dialLoaded connects a client to s and loads the root through it.
func dialLoaded(t *testing.T, s *site) *wire.Conn {
	t.Helper()
	c := dial(t, s)
	if st, _, err := c.Load(0); err != nil || st != wire.StatusOK {
		t.Fatalf("load of the root on %s: %q %v", s.name, st, err)
	}
	return c
}

// TestReplReplicaRollbackResetInPlace: a replica that never was master
// holds a commit the group then loses — its master's disk is replaced by
// a copy from before that commit while the replica is cut off, and the
// third site never received it — so when it comes back libdb rolls its
// log back to the group's history and kills its handles
// (DB_REP_HANDLE_DEAD). The site is reset in place: the same process, its
// earlier client's connection closed (its cache held the lost record), and
// it serves the group's record; every site ends with the same records
// (db_dump of every database). (A commit acknowledged by two sites is lost
// here only because one of them lost its disk and the other was cut off:
// the double failure the quorum arithmetic does not cover.)
func TestReplReplicaRollbackResetInPlace(t *testing.T) {
	sites := startGroup(t, 3)
	m, r1, r2 := sites[0], sites[1], sites[2]
	mc := dial(t, m)
	head := setupRoot(t, mc, 1)[0]
	commitOn := func(c *wire.Conn, s *site, data string) []byte {
		t.Helper()
		rec := record.Build(head, []byte(data))
		if _, st, err := c.Commit([][]byte{rec}); err != nil || st != wire.StatusOK {
			t.Fatalf("commit %q on %s: %q %v", data, s.name, st, err)
		}
		return rec
	}
	a := commitOn(mc, m, "A: on every site")
	for _, s := range sites[1:] {
		testwait.For(t, s.name+" serving A", func() bool { return loadsAs(s, head, a) })
	}
	// The master's directory as it is now (a crash image: the process is
	// stopped while it is copied), to replace its disk with later.
	snap := t.TempDir() + "/snap"
	m.signal(syscall.SIGSTOP)
	out, err := exec.Command("cp", "-a", m.cfg.Dir, snap).CombinedOutput()
	m.signal(syscall.SIGCONT)
	if err != nil {
		t.Fatalf("copy %s: %v\n%s", m.cfg.Dir, err, out)
	}

	r2.signal(syscall.SIGSTOP)
	b := commitOn(mc, m, "B: acknowledged by site1 alone")
	testwait.For(t, r1.name+" serving B", func() bool { return loadsAs(r1, head, b) })
	rc := dialLoaded(t, r1)
	if st, rec, err := rc.Load(head); err != nil || st != wire.StatusOK || !bytes.Equal(rec, b) {
		t.Fatalf("load of B on %s: %q %q %v", r1.name, st, rec, err)
	}

	// site1 cut off; the master dies and its disk is replaced by the copy.
	r1.signal(syscall.SIGSTOP)
	m.kill()
	if err := os.RemoveAll(m.cfg.Dir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", snap, m.cfg.Dir).CombinedOutput(); err != nil {
		t.Fatalf("restore %s: %v\n%s", m.cfg.Dir, err, out)
	}
	r2.signal(syscall.SIGCONT)
	m2 := m.restart(t)
	nm := masterOf(t, []*site{m2, r2})
	c := commitOn(dial(t, nm), nm, "C: the group's history, without B")

	pid := r1.cmd.Process.Pid
	r1.signal(syscall.SIGCONT)
	testwait.Within(t, 2*time.Minute, r1.name+" rolled back, reset in place and serving C", func() bool {
		if _, _, _, ex := r1.state(); ex {
			log, _ := os.ReadFile(r1.cfg.Dir + ".log")
			t.Fatalf("%s exited instead of resetting in place; its log:\n%s", r1.name, log[max(0, len(log)-4000):])
		}
		return r1.resetCount() > 0 && loadsAs(r1, head, c)
	})
	if _, role, _, _ := r1.state(); role != kv.RoleReplica || r1.cmd.Process.Pid != pid {
		t.Fatalf("%s after the rollback: role %s, pid %d (was %d)", r1.name, role, r1.cmd.Process.Pid, pid)
	}
	if st, rec, err := rc.Load(head); err == nil {
		t.Fatalf("%s's client from before the rollback still answers (%q %q): its cache held B", r1.name, st, rec)
	}
	other := r2 // the site of the new group that was not elected
	if nm == r2 {
		other = m2
	}
	sameEverywhere(t, []*site{nm, r1, other}, []ackedRec{{head, c}})
}
