//go:build bdb

package repl

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/freeport"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
	"github.com/durusbdb/durusbdb/kv"
)

// dial connects a wire client to the site.
func dial(t testing.TB, s *site) *wire.Conn {
	t.Helper()
	a, _, _, _ := s.state()
	c, err := wire.Dial(a, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// loadsAs reports whether oid loads as want on s (a fresh connection).
func loadsAs(s *site, oid uint64, want []byte) bool {
	rec, ok := loadOn(s, oid)
	return ok && bytes.Equal(rec, want)
}

// loadOn loads oid on s over a fresh connection; false unless answered O.
func loadOn(s *site, oid uint64) ([]byte, bool) {
	a, _, _, ex := s.state()
	if ex || a == "" {
		return nil, false
	}
	c, err := wire.Dial(a, 5*time.Second)
	if err != nil {
		return nil, false
	}
	defer c.Close()
	st, rec, err := c.Load(oid)
	return rec, err == nil && st == wire.StatusOK
}

// setupRoot commits the root (referencing n heads) on the master and
// returns the heads' oids.
func setupRoot(t testing.TB, c *wire.Conn, n int) []uint64 {
	t.Helper()
	oids, err := c.NewOIDs(1 + n)
	if err != nil || oids[0] != 0 {
		t.Fatalf("first oids %v, %v", oids, err)
	}
	recs := [][]byte{record.Build(0, []byte("root"), oids[1:]...)}
	for _, h := range oids[1:] {
		recs = append(recs, record.Build(h, []byte("head 0")))
	}
	if _, st, err := c.Commit(recs); err != nil || st != wire.StatusOK {
		t.Fatalf("root commit: %q %v", st, err)
	}
	return oids[1:]
}

// TestReplServerGroup: a 3-site group of servers; the master takes
// commits, a replica serves them (L) once replicated and refuses a
// commit of its own; every site reports the master's Durus address.
func TestReplServerGroup(t *testing.T) {
	sites := startGroup(t, 3)
	m := sites[0]
	c := dial(t, m)
	heads := setupRoot(t, c, 1)
	rec := record.Build(heads[0], []byte("head 1"))
	if _, st, err := c.Commit([][]byte{rec}); err != nil || st != wire.StatusOK {
		t.Fatalf("commit on the master: %q %v", st, err)
	}
	maddr, _, _, _ := m.state()
	for _, r := range sites[1:] {
		testwait.For(t, r.name+" serving the master's commit", func() bool { return loadsAs(r, heads[0], rec) })
		testwait.For(t, r.name+" naming the master", func() bool { _, _, ma, _ := r.state(); return ma == maddr })
	}
	// A replica's client that loaded the head is told when the master
	// changes it (replicated change table → its invalidations). It
	// connects at once: commits applied on the replica before it
	// connected, whose change entries the follower may not have reported
	// yet, are reported before the replica registers it (no spurious
	// invalidation: its first load of the head is answered, not I).
	rc := dial(t, sites[1])
	if st, got, err := rc.Load(heads[0]); err != nil || st != wire.StatusOK || !bytes.Equal(got, rec) {
		t.Fatalf("load on the replica: %q %q %v", st, got, err)
	}
	if _, err := rc.Sync(); err != nil {
		t.Fatal(err)
	}
	rec2 := record.Build(heads[0], []byte("head 2"))
	if _, st, err := c.Commit([][]byte{rec2}); err != nil || st != wire.StatusOK {
		t.Fatalf("second commit on the master: %q %v", st, err)
	}
	testwait.For(t, "the replica's client invalidated", func() bool {
		inv, err := rc.Sync()
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(inv, heads[0])
	})
	if st, got, err := rc.Load(heads[0]); err != nil || st != wire.StatusOK || !bytes.Equal(got, rec2) {
		t.Fatalf("load on the replica after the invalidation: %q %q %v, want %q", st, got, err, rec2)
	}
	testwait.For(t, "the replica reporting a replication lag", func() bool {
		sites[1].mu.Lock()
		defer sites[1].mu.Unlock()
		return sites[1].lag > 0
	})
	t.Logf("replica lag of the last change: %v", func() time.Duration { sites[1].mu.Lock(); defer sites[1].mu.Unlock(); return sites[1].lag }())
	// A commit sent to the replica is forwarded to the master
	// (forward_test.go).
}

// TestReplServerPermFailed: with both replicas stopped no quorum can
// acknowledge, so a commit to the master is never answered O: the
// connection is closed without a reply. Nothing acknowledged is missing
// from the new master after the old one is killed.
// TestReplServerNoQuorumYet: the master of a group configured for three
// sites, alone at the group's very first start, refuses commits with E
// (nothing stored: libdb would acknowledge them on the master's disk
// alone) and names why; once a replica has joined, the same commit is
// answered O.
func TestReplServerNoQuorumYet(t *testing.T) {
	base := t.TempDir()
	addrs := freeport.T(t, 3)
	cfg := func(i int) siteConfig {
		c := siteConfig{Dir: fmt.Sprintf("%s/site%d", base, i), Listen: addrs[i], Init: i == 0}
		if err := os.Mkdir(c.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for j, a := range addrs {
			if j != i {
				c.Peers = append(c.Peers, a)
			}
		}
		return c
	}
	m := startSite(t, "site0", cfg(0))
	testwait.Within(t, time.Minute, "site0 master", m.isMaster)
	// Oid allocation is quorum-durable too: refused (the connection
	// closed, M has no error reply) while no quorum can acknowledge it.
	if oids, err := dial(t, m).NewOIDs(1); err == nil {
		t.Fatalf("new oid on a master alone in a group of 3: %v, want the connection closed", oids)
	}
	c := dial(t, m)
	root := record.Build(0, []byte("root"))
	if _, st, err := c.Commit([][]byte{root}); err != nil || st != wire.StatusRefused {
		t.Fatalf("commit on a master alone in a group of 3: %q %v, want E", st, err)
	}
	r := startSite(t, "site1", cfg(1))
	testwait.Within(t, time.Minute, "site1 ready replica", func() bool {
		a, role, _, _ := r.state()
		return a != "" && role == kv.RoleReplica
	})
	testwait.For(t, "the root commit answered once a replica joined", func() bool {
		_, st, err := c.Commit([][]byte{root})
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		return st == wire.StatusOK
	})
	testwait.For(t, "site1 serving the root", func() bool { return loadsAs(r, 0, root) })
	if oids, err := dial(t, m).NewOIDs(1); err != nil || oids[0] == 0 {
		t.Fatalf("new oid once a replica joined: %v %v", oids, err)
	}
}

func TestReplServerPermFailed(t *testing.T) {
	sites := startGroup(t, 3)
	m := sites[0]
	c := dial(t, m)
	heads := setupRoot(t, c, 1)
	acked := record.Build(heads[0], []byte("head acked"))
	if _, st, err := c.Commit([][]byte{acked}); err != nil || st != wire.StatusOK {
		t.Fatalf("commit: %q %v", st, err)
	}
	for _, r := range sites[1:] {
		r.signal(syscall.SIGSTOP)
	}
	lost := record.Build(heads[0], []byte("head not acked"))
	_, st, err := c.Commit([][]byte{lost})
	if err == nil {
		t.Fatalf("commit with both replicas stopped answered %q, want the connection closed without a reply", st)
	}
	t.Logf("commit without a quorum: %v (no reply, as required)", err)
	for _, r := range sites[1:] {
		r.signal(syscall.SIGCONT)
	}
	m.kill()
	nm := masterOf(t, sites[1:])
	testwait.For(t, "the acknowledged commit on the new master", func() bool {
		a, _, _, _ := nm.state()
		cc, err := wire.Dial(a, 5*time.Second)
		if err != nil {
			return false
		}
		defer cc.Close()
		st, rec, err := cc.Load(heads[0])
		if err != nil || st != wire.StatusOK {
			return false
		}
		if !bytes.Equal(rec, acked) && !bytes.Equal(rec, lost) {
			t.Errorf("head on the new master is %q: neither the acknowledged commit nor the unacknowledged one after it", rec)
		}
		return true
	})
}
