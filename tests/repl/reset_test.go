//go:build bdb

package repl

import (
	"fmt"
	"syscall"
	"testing"
	"time"

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
