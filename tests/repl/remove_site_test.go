//go:build bdb

package repl

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// startCLIGroup starts sites as `durusbdb serve` processes, the first
// creating the group, and waits until it is master and the others
// replicas.
func startCLIGroup(t *testing.T, sites []*cliSite) {
	t.Helper()
	sites[0].start(true)
	sites[0].waitRole(time.Minute, "master")
	for _, s := range sites[1:] {
		s.start(false)
	}
	for _, s := range sites[1:] {
		s.waitRole(time.Minute, "replica")
	}
}

// commitOn commits rec on the site at addr over a fresh connection and
// returns the status ('O'), or the error of a connection closed without
// a reply (no quorum).
func commitOn(t *testing.T, addr string, rec []byte) (byte, error) {
	t.Helper()
	c, err := wire.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_, st, err := c.Commit([][]byte{rec})
	return st, err
}

// TestReplRemoveSite: kill -9 one replica of a 3-site group for good and
// remove it with `durusbdb repl remove-site` run on the other replica
// (libdb forwards it to the master): every live
// site's group (`repl status`) drops it and counts 2 sites. With the dead
// site still a member, stopping the other replica leaves the master
// without the acknowledgement a group of 3 needs (the commit gets no
// reply); once it is removed, the same stop still does: libdb 5.3 would
// ask a 2-site group for no acknowledgement, but the sites' configuration
// still names three (--repl-peer), and a commit kept by the master alone
// would be lost if the removed site came back (as it does below) and an
// election went on without the master (bdb ackPolicyFor). The refusals (this site's own address, the master's,
// a non-member) name the address, and a restart of the removed site's
// old directory re-adds it to the group.
func TestReplRemoveSite(t *testing.T) {
	sites := newCLISites(t, cliBinary(t), 3)
	startCLIGroup(t, sites)
	m, r, dead := sites[0], sites[1], sites[2]
	c, err := wire.Dial(m.durus, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	heads := setupRoot(t, c, 1)
	if g, err := m.group(); err != nil || g.NSites != 3 || g.Master != m.repl || !g.names(dead.repl) {
		t.Fatalf("group before: %+v, %v", g, err)
	}
	// check of a live replica is refused (no snapshot: a scan while
	// replication applies commits reported them as problems); the
	// master's runs.
	for _, cmd := range [][]string{{"check"}, {"gc"}, {"gc", "--full"}} {
		if code, _, stderr := r.cli(append(cmd, "--dir", r.dir)...); code != 1 || !strings.Contains(stderr, "live replica") || !strings.Contains(stderr, "run it on the master ("+m.durus+")") {
			t.Errorf("%s on a live replica: exit %d, %q; want 1 and the master's address", cmd, code, stderr)
		}
	}
	if code, out, stderr := m.cli("check", "--dir", m.dir); code != 0 {
		t.Errorf("check of the live master: exit %d\n%s%s", code, out, stderr)
	}

	// A live member is refused.
	if code, _, stderr := m.cli("repl", "remove-site", dead.repl, "--dir", m.dir); code != 1 || !strings.Contains(stderr, "looks alive") {
		t.Fatalf("remove-site of a live site: exit %d, %q", code, stderr)
	}
	dead.kill()
	// Without the removal: the master and one stopped replica of 3 members.
	r.signal(syscall.SIGSTOP)
	if st, err := commitOn(t, m.durus, record.Build(heads[0], []byte("no quorum"))); err == nil {
		r.signal(syscall.SIGCONT)
		t.Fatalf("commit with the dead site a member and the other replica stopped answered %q, want no reply", st)
	}
	r.signal(syscall.SIGCONT)
	// The removal is a membership change the master commits with the
	// quorum's acknowledgement: wait until the continued replica acks.
	testwait.For(t, "a commit acknowledged again", func() bool {
		st, err := commitOn(t, m.durus, record.Build(heads[0], []byte("acked again")))
		return err == nil && st == wire.StatusOK
	})

	checkRemoveRefusals(t, m, r, dead)

	// Run on the replica: libdb sends the request to the master.
	code, out, stderr := r.cli("repl", "remove-site", dead.repl, "--dir", r.dir)
	if code != 0 || !strings.Contains(out, "2 sites now") {
		t.Fatalf("remove-site %s: exit %d\n%s%s", dead.repl, code, out, stderr)
	}
	for _, s := range []*cliSite{m, r} {
		testwait.For(t, s.name+" dropping the removed site", func() bool {
			g, err := s.group()
			return err == nil && g.NSites == 2 && len(g.Sites) == 2 && !g.names(dead.repl)
		})
	}
	acked := record.Build(heads[0], []byte("after the removal"))
	if st, err := commitOn(t, m.durus, acked); err != nil || st != wire.StatusOK {
		t.Fatalf("commit after the removal: %q %v", st, err)
	}
	testwait.For(t, "the replica serving the commit", func() bool { return loadsAddr(r.durus, heads[0], acked) })
	// With the removal: the same stop still leaves the commit unanswered.
	r.signal(syscall.SIGSTOP)
	st, err := commitOn(t, m.durus, record.Build(heads[0], []byte("2 sites, replica stopped")))
	r.signal(syscall.SIGCONT)
	if err == nil {
		t.Fatalf("commit on a 2-site group configured for 3 with its replica stopped answered %q, want no reply", st)
	}
	testwait.For(t, "a commit acknowledged after the removal", func() bool {
		st, err := commitOn(t, m.durus, record.Build(heads[0], []byte("acked after the removal")))
		return err == nil && st == wire.StatusOK
	})

	// The removed site's directory still says it is a member: its restart
	// joins again, and the master adds it back.
	dead.start(false)
	dead.waitRole(time.Minute, "replica")
	testwait.For(t, "the restarted site re-added", func() bool {
		g, err := m.group()
		return err == nil && g.NSites == 3 && g.names(dead.repl)
	})
}

// loadsAddr reports whether oid loads as want on the server at addr.
func loadsAddr(addr string, oid uint64, want []byte) bool {
	c, err := wire.Dial(addr, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	st, rec, err := c.Load(oid)
	return err == nil && st == wire.StatusOK && string(rec) == string(want)
}

// checkRemoveRefusals: remove-site refuses the site's own address, the
// master's and a non-member, each error naming the address (and, for the
// non-member, listing the group).
func checkRemoveRefusals(t *testing.T, m, r, dead *cliSite) {
	t.Helper()
	for _, c := range []struct {
		on        *cliSite
		addr, msg string
	}{
		{r, r.repl, "this site's own"},
		{r, m.repl, "the current master's"},
		{m, "127.0.0.1:1", "not in the replication group"},
	} {
		code, _, stderr := c.on.cli("repl", "remove-site", c.addr, "--dir", c.on.dir)
		if code != 1 || !strings.Contains(stderr, c.addr) || !strings.Contains(stderr, c.msg) {
			t.Errorf("remove-site %s on %s: exit %d, %q; want 1 and %q", c.addr, c.on.name, code, stderr, c.msg)
		}
		if c.msg == "not in the replication group" && !strings.Contains(stderr, dead.repl) {
			t.Errorf("remove-site of a non-member: %q does not list the group", stderr)
		}
	}
}
