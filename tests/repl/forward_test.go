//go:build bdb

package repl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestReplServerForward: a stock-protocol client of a replica allocates
// oids (forwarded A) and commits (forwarded F); right after 'O' the
// records load on the replica (read-your-writes) and on the master,
// another client of the replica is told of the change, the committer is
// not; a refusal by the master reaches the client with its status.
func TestReplServerForward(t *testing.T) {
	sites := startGroup(t, 3)
	m, r := sites[0], sites[1]
	c := dial(t, m)
	heads := setupRoot(t, c, 2)
	head0 := record.Build(heads[0], []byte("head 0"))
	testwait.For(t, r.name+" serving the root", func() bool { return loadsAs(r, heads[0], head0) })

	rc, other := dial(t, r), dial(t, r)
	if _, err := other.Sync(); err != nil {
		t.Fatal(err)
	}
	oids, err := rc.NewOIDs(2)
	if err != nil || len(oids) != 2 || oids[0] == 0 || oids[0] == oids[1] || slices.Contains(heads, oids[0]) || slices.Contains(heads, oids[1]) {
		t.Fatalf("oids allocated through the replica: %v %v", oids, err)
	}
	leaf := record.Build(oids[0], []byte("leaf via replica"))
	head := record.Build(heads[0], []byte("head via replica"), oids[0])
	if _, st, err := rc.Commit([][]byte{head, leaf}); err != nil || st != wire.StatusOK {
		t.Fatalf("commit through the replica: %q %v", st, err)
	}
	// No waiting from here on: the answer came once the replica applied it.
	for _, want := range [][]byte{head, leaf} {
		oid := record.OID(want)
		if st, got, err := rc.Load(oid); err != nil || st != wire.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("load of %d on the replica right after O: %q %q %v", oid, st, got, err)
		}
		if !loadsAs(m, oid, want) {
			t.Fatalf("oid %d not on the master after O", oid)
		}
	}
	if inv, err := other.Sync(); err != nil || !slices.Contains(inv, heads[0]) {
		t.Fatalf("the replica's other client after O: invalidations %v %v, want %d", inv, err, heads[0])
	}
	if inv, err := rc.Sync(); err != nil || slices.Contains(inv, heads[0]) {
		t.Fatalf("the committer told of its own commit: %v %v", inv, err)
	}

	// Refusals decided by the master: an oid handed to a client of the
	// master (rule 7: E), a reference to an oid without a record (rule
	// 10: I). Nothing is stored and the connection stays usable.
	mine, err := c.NewOIDs(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, st, err := rc.Commit([][]byte{record.Build(mine[0], []byte("stolen"))}); err != nil || st != wire.StatusRefused {
		t.Fatalf("commit of the master's client's oid through the replica: %q %v, want E", st, err)
	}
	dangling := record.Build(heads[1], []byte("dangling"), oids[1])
	if _, st, err := rc.Commit([][]byte{dangling}); err != nil || st != wire.StatusInvalid {
		t.Fatalf("dangling reference through the replica: %q %v, want I", st, err)
	}
	if st, got, err := rc.Load(heads[1]); err != nil || st != wire.StatusOK || bytes.Equal(got, dangling) {
		t.Fatalf("load after the refusals: %q %q %v", st, got, err)
	}

	// A commit made on the master after the replica's phase 1 (which
	// could not tell the client) is a conflict: I, nothing stored.
	if _, err := rc.Begin(); err != nil {
		t.Fatal(err)
	}
	masterRec := record.Build(heads[1], []byte("head by the master"))
	if _, st, err := c.Commit([][]byte{masterRec}); err != nil || st != wire.StatusOK {
		t.Fatalf("commit on the master: %q %v", st, err)
	}
	if st, err := rc.Finish(wire.Frames(record.Build(heads[1], []byte("lost update")))); err != nil || st != wire.StatusInvalid {
		t.Fatalf("commit over a change made after phase 1: %q %v, want I", st, err)
	}
	if !loadsAs(m, heads[1], masterRec) {
		t.Fatal("the master's record was overwritten")
	}

	// The master's F reply carries the apply run's libdb commit token
	// and change entry (F: 'F', int8 phase-1 position, int4 len, frames).
	fc := dial(t, m)
	if err := fc.Version(); err != nil {
		t.Fatal(err)
	}
	data := wire.Frames(record.Build(oids[1], []byte("never committed before"))) // pos 0: no conflict
	if err := fc.Send([]byte{'F'}, make([]byte, 8), binary.BigEndian.AppendUint32(nil, uint32(len(data))), data); err != nil {
		t.Fatal(err)
	}
	b, err := fc.ReadFull(1 + 20 + 8)
	if err != nil || b[0] != wire.StatusOK || bytes.Equal(b[1:21], make([]byte, 20)) || binary.BigEndian.Uint64(b[21:]) == 0 {
		t.Fatalf("F on the master: %x %v, want O, a commit token and a change number", b, err)
	}
}

// loadsRoot reports whether s serves ROOT_OID (a fresh connection).
func loadsRoot(s *site) bool {
	_, ok := loadOn(s, 0)
	return ok
}

// TestReplServerForwardStorm: stormConns connections commit through a
// replica for a while; every commit answered O is, byte for byte, on
// the master and on that replica at once, and on the third site soon.
func TestReplServerForwardStorm(t *testing.T) {
	sites := startGroup(t, 3)
	m, r, third := sites[0], sites[1], sites[2]
	heads := setupRoot(t, dial(t, m), stormConns)
	testwait.For(t, r.name+" serving the root", func() bool { return loadsRoot(r) })
	quit := make(chan struct{})
	time.AfterFunc(2*time.Second, func() { close(quit) })
	addr, _, _, _ := r.state()
	acked := storm(addr, heads, 0, quit)
	if len(acked) < stormConns {
		t.Fatalf("%d commits acknowledged through the replica", len(acked))
	}
	t.Logf("%d commits acknowledged through the replica in 2 s", len(acked))
	if n := missing(m, acked); n != 0 {
		t.Fatalf("%d of %d acknowledged commits missing on the master", n, len(acked))
	}
	if n := missing(r, acked); n != 0 {
		t.Fatalf("%d of %d acknowledged commits missing on the replica that answered them", n, len(acked))
	}
	testwait.For(t, third.name+" holding every acknowledged commit", func() bool { return missing(third, acked) == 0 })
}

// BenchmarkReplServerCommitForwarded is BenchmarkReplServerCommit with the
// commits sent to a replica of the 3-site group, which forwards them.
//
//	go test -tags bdb -run '^$' -bench ReplServerCommitForwarded -benchtime=1x ./tests/repl/
func BenchmarkReplServerCommitForwarded(b *testing.B) {
	sites := startGroup(b, 3)
	benchCommitsVia(b, sites[0], sites[1])
}

// TestReplServerFailoverViaReplica: an 8-connection storm sent through a
// replica while the master is killed (-9) at a random moment: the
// forwarded commits in flight get no answer; every commit answered O is
// on the new master and, once the old master has rejoined, on it too.
// ROUNDS rounds (default 2).
func TestReplServerFailoverViaReplica(t *testing.T) {
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	sites := startGroup(t, 3)
	heads := setupRoot(t, dial(t, sites[0]), stormConns)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill moments from seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 23))
	var all []ackedRec
	for r := range rounds {
		m := masterOf(t, sites)
		rest := slices.DeleteFunc(slices.Clone(sites), func(s *site) bool { return s == m })
		via := rest[r%2]
		testwait.For(t, via.name+" naming the master", func() bool {
			_, role, ma, _ := via.state()
			a, _, _, _ := m.state()
			return role == "replica" && ma == a
		})
		addr, _, _, _ := via.state()
		// A replica that just followed a master change can sit in a
		// libdb lockout for seconds: wait until it forwards again.
		pc := dial(t, via)
		testwait.Within(t, time.Minute, "a commit through "+via.name, func() bool {
			_, err := commitNew(pc, heads[0], []byte("probe"))
			if err != nil && !errors.Is(err, wire.ErrStatus) {
				pc = dial(t, via) // closed without a reply
			}
			return err == nil
		})
		done := make(chan []ackedRec, 1)
		quit := make(chan struct{})
		go func() { done <- storm(addr, heads, r, quit) }()
		// A random moment of the storm, bounded, so that a round's
		// length does not grow with its number (ROUNDS=100 by hand).
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		m.kill()
		nm := masterOf(t, rest)
		firstCommit(t, nm, heads[0])
		close(quit)
		acked := <-done
		all = append(all, acked...)
		if n := missing(nm, all); n > 0 {
			t.Fatalf("round %d: %d of %d acknowledged commits missing on the new master %s", r, n, len(all), nm.name)
		}
		back := m.restart(t)
		sites[slices.Index(sites, m)] = back
		testwait.Within(t, time.Minute, back.name+" rejoined with every acknowledged commit", func() bool {
			_, role, _, _ := back.state()
			return role == "replica" && missing(back, all) == 0
		})
		t.Logf("round %d: %d commits acknowledged through %s before the kill; new master %s", r, len(acked), via.name, nm.name)
	}
	if len(all) == 0 {
		t.Fatal("no commit acknowledged through a replica")
	}
}
