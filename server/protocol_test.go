package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
)

// storeKind makes a fresh empty Storage for a test.
type storeKind struct {
	name string
	open func(t testing.TB) Storage
}

// forEachStore runs f against every storage kind (the in-memory fake and
// the engine on each compiled backend).
func forEachStore(t *testing.T, f func(t *testing.T, open func(t testing.TB) Storage)) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) { f(t, k.open) })
	}
}

func memKind() storeKind {
	return storeKind{"mem", func(testing.TB) Storage { return newMemStore() }}
}

// C6, C7, C8.
func TestVersion(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	c := ts.dial(t)
	c.send([]byte{'V'}, u32(1))
	c.expect(u32(1))
	c.send([]byte{'V'}, u32(1)) // any number of times
	c.expect(u32(1))
	c.send([]byte{'N'})
	c.read(8)

	c2 := ts.dial(t)
	c2.send([]byte{'V'}, u32(2))
	c2.expect(u32(1))
	c2.expectClosed(30 * time.Second)

	// C8: no V at all.
	c3 := ts.dial(t)
	if st, _ := c3.load(5); st != 'K' {
		t.Fatalf("load without V: %q", st)
	}
}

// C9, C10 (concurrent part), A2, A3.
func TestAllocation(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		c := ts.dial(t)
		got := c.newOIDs(32)
		for i, o := range got {
			if o != uint64(i) {
				t.Fatalf("fresh M 20: oid %d at %d", o, i)
			}
		}
		c.send([]byte{'N'})
		if o := binary.BigEndian.Uint64(c.read(8)); o != 32 {
			t.Fatalf("N gave %d, want 32", o)
		}
		c.send([]byte{'M', 0}) // empty reply
		c.send([]byte{'N'})
		if o := binary.BigEndian.Uint64(c.read(8)); o != 33 {
			t.Fatalf("N after M 0 gave %d, want 33", o)
		}
		big := c.newOIDs(255)
		for i := 1; i < len(big); i++ {
			if big[i] <= big[i-1] {
				t.Fatalf("M FF not increasing at %d", i)
			}
		}

		// Concurrent connections never share an oid.
		var mu sync.Mutex
		seen := map[uint64]bool{}
		for _, o := range append(got, big...) {
			seen[o] = true
		}
		var wg sync.WaitGroup
		for range 6 {
			cc := ts.dial(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 20 {
					cc.send([]byte{'M', 7})
					b := make([]byte, 56)
					cc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := readFull(cc.nc, b); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for i := 0; i < 7; i++ {
						o := binary.BigEndian.Uint64(b[8*i:])
						if seen[o] {
							t.Errorf("oid %d handed out twice", o)
						}
						seen[o] = true
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
}

// C11, C12, C38.
func TestLoadAndBulk(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		a := ts.dial(t)
		oids := a.newOIDs(3)
		x, missing, y := oids[1], oids[2], oids[0]
		if st, _ := a.load(x); st != 'K' {
			t.Fatalf("load before commit: %q", st)
		}
		rx := rec(x, "\x80\x02cmod\nX\nq\x00.state-x")
		ry := rec(y, "state-y", x)
		if _, st := a.commit(rx, ry); st != 'O' {
			t.Fatalf("commit: %q", st)
		}
		// C38: B's next load sees it, byte for byte.
		b := ts.dial(t)
		st, got := b.load(x)
		if st != 'O' || !bytes.Equal(got, rx) {
			t.Fatalf("load: %q %x", st, got)
		}
		// C12.
		b.send([]byte{'B'}, u32(0))
		b.send([]byte{'B'}, u32(4), u64(x), u64(missing), u64(y), u64(x))
		for i, want := range [][]byte{rx, nil, ry, rx} {
			st, got := b.loadResponse()
			if want == nil {
				if st != 'K' {
					t.Fatalf("bulk %d: %q", i, st)
				}
				continue
			}
			if st != 'O' || !bytes.Equal(got, want) {
				t.Fatalf("bulk %d: %q %x", i, st, got)
			}
		}
		// B with count 0 sent nothing: the next reply is S's.
		if inv := b.sync(); len(inv) != 0 {
			t.Fatalf("S: %v", inv)
		}
	})
}

// C13, C17, C18, C19, C20, C21, C22, C24.
func TestInvalidation(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		a := ts.dial(t)
		b := ts.dial(t)
		o := a.newOIDs(2)
		x, y := o[0], o[1]
		if _, st := a.commit(rec(x, "x1"), rec(y, "y1")); st != 'O' {
			t.Fatal(st)
		}
		// C18: B never loaded X, still I.
		if st, _ := b.load(x); st != 'I' {
			t.Fatalf("B load X: %q, want I", st)
		}
		b.send([]byte{'B'}, u32(2), u64(y), u64(x))
		for range 2 {
			if st, _ := b.loadResponse(); st != 'I' {
				t.Fatalf("B bulk: %q, want I", st)
			}
		}
		// C22: a second commit of X gives a single X.
		if _, st := a.commit(rec(x, "x2")); st != 'O' {
			t.Fatal(st)
		}
		inv := b.sync()
		slices.Sort(inv)
		if !slices.Equal(inv, []uint64{x, y}) {
			t.Fatalf("B's S: %v, want [%d %d]", inv, x, y)
		}
		// C13: second S empty.
		if inv := b.sync(); len(inv) != 0 {
			t.Fatalf("second S: %v", inv)
		}
		if st, r := b.load(x); st != 'O' || !bytes.Equal(r, rec(x, "x2")) {
			t.Fatalf("B load after S: %q %x", st, r)
		}
		// C19: A's own S does not list its commits.
		if inv := a.sync(); len(inv) != 0 {
			t.Fatalf("A's S: %v", inv)
		}
		// C20: a connection opened after the commit is not told.
		c := ts.dial(t)
		if inv := c.sync(); len(inv) != 0 {
			t.Fatalf("new conn S: %v", inv)
		}
		// C21, C24: phase 1 empties the set even with len 0; no reply to len 0.
		if _, st := a.commit(rec(x, "x3")); st != 'O' {
			t.Fatal(st)
		}
		if inv := b.begin(); !slices.Equal(inv, []uint64{x}) {
			t.Fatalf("phase 1 list %v", inv)
		}
		b.send(u32(0))
		if inv := b.sync(); len(inv) != 0 {
			t.Fatalf("S after len-0 commit: %v", inv)
		}
		if st, _ := b.load(x); st != 'O' {
			t.Fatalf("load after phase 1: %q", st)
		}
	})
}

// C23, I2: removals reach every open connection at once.
func TestInvalidateRemoved(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	a := ts.dial(t)
	b := ts.dial(t)
	a.send([]byte{'N'})
	a.read(8)
	b.sync() // b is registered
	ts.srv.InvalidateRemoved([]uint64{9, 7, 8, 100})
	for _, c := range []*client{a, b} {
		if st, _ := c.load(8); st != 'I' {
			t.Fatalf("load of removed oid: %q", st)
		}
		inv := c.sync()
		slices.Sort(inv)
		if !slices.Equal(inv, []uint64{7, 8, 9, 100}) {
			t.Fatalf("S: %v", inv)
		}
	}
}

// C14 with the fake (counts packs), G1.
func TestPack(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{}, m)
	c := ts.dial(t)
	c.send([]byte{'P'})
	c.status('O')
	c.send([]byte{'P'}) // a collection "runs": no second one
	c.status('O')
	if n := m.packs.Load(); n != 1 {
		t.Fatalf("%d packs started, want 1", n)
	}
}

// C16: unknown command bytes close only that connection.
func TestUnknownCommand(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	other := ts.dial(t)
	for _, cmd := range []byte{0x2E, 0x00, 0x47, 0xFF} {
		c := ts.dial(t)
		c.send([]byte{cmd, 'N'}) // the N must never be answered
		c.expectClosed(30 * time.Second)
		other.send([]byte{'N'})
		other.read(8)
	}
	if !containsLog(ts, "byte=47") || !containsLog(ts, "byte=FF") {
		t.Fatalf("unknown bytes not logged:\n%s", ts.logs)
	}
	// The close line is written after the socket is closed.
	waitFor(t, 30*time.Second, "'.' logged as a normal close", func() bool { return containsLog(ts, "client closed") })
}

// C26, C27, C28, C29: malformed commits → E, nothing stored, connection usable.
func TestCommitRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		c := ts.dial(t)
		o := c.newOIDs(4)
		good := rec(o[1], "good")
		cases := []struct {
			name string
			data []byte
		}{
			{"oid differs from record", append(frame(o[1], rec(o[2], "x")), frame(o[3], rec(o[3], "y"))...)},
			{"frames short of len", append(txnData(good), 0, 0)},
			{"frame past len", frame(o[1], good)[:len(frame(o[1], good))-1]},
			{"flen below 20", append(append(u32(19), u64(o[1])...), make([]byte, 11)...)},
			{"flen below 20 (8)", append(u32(8), u64(o[1])...)},
			{"record shorter than 12", append(u32(8+11), append(u64(o[1]), make([]byte, 11)...)...)},
			{"n runs past the record", frame(o[1], append(u64(o[1]), 0, 0, 0, 9, 'a'))},
			{"refs not a multiple of 8", frame(o[1], append(rec(o[1], "d"), 1, 2, 3))},
			{"same oid twice", txnData(good, rec(o[2], "z"), rec(o[1], "again"))},
			{"oid never handed out", txnData(rec(1<<40, "far"))},
			{"oid at the cursor", txnData(rec(o[3]+1, "next"))},
		}
		for _, tc := range cases {
			if _, st := c.begin(), c.commitData(tc.data); st != 'E' {
				t.Fatalf("%s: status %q, want E", tc.name, st)
			}
			for _, oid := range []uint64{o[1], o[2], o[3], 1 << 40} {
				if st, _ := c.load(oid); st != 'K' {
					t.Fatalf("%s: oid %d stored (%q)", tc.name, oid, st)
				}
			}
		}
		// Still usable, and allocation unaffected (C29).
		if n := c.newOIDs(1)[0]; n != o[3]+1 {
			t.Fatalf("next oid %d, want %d", n, o[3]+1)
		}
		if _, st := c.commit(good); st != 'O' {
			t.Fatalf("good commit after refusals: %q", st)
		}
		if !containsLog(ts, "rule=6") || !containsLog(ts, "oid=1099511627776") {
			t.Fatalf("refusal log lacks rule/oid:\n%s", ts.logs)
		}
	})
}

// C30: another open connection's unused oid → E; after it closes → O.
func TestCommitOtherUnused(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		a := ts.dial(t)
		b := ts.dial(t)
		a.newOIDs(1) // root
		x := b.newOIDs(3)[1]
		if _, st := a.commit(rec(x, "theft")); st != 'E' {
			t.Fatalf("commit of B's oid: %q", st)
		}
		b.nc.Close()
		waitFor(t, 30*time.Second, "B to close", func() bool { return ts.srv.NumConns() == 1 })
		if _, st := a.commit(rec(x, "theft")); st != 'O' {
			t.Fatalf("commit after B closed: %q", st)
		}
	})
}

// C31, C32: root without allocation; dangling references.
func TestCommitRootAndDangling(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		c := ts.dial(t)
		if _, st := c.commit(rec(0, "root")); st != 'O' {
			t.Fatalf("root commit: %q", st)
		}
		o := c.newOIDs(3)
		if o[0] == 0 {
			t.Fatal("root handed out although stored")
		}
		// Dangling: o[1] has no record.
		if _, st := c.commit(rec(o[0], "a", o[1])); st != 'I' {
			t.Fatalf("dangling ref: %q", st)
		}
		if st, _ := c.load(o[0]); st != 'K' {
			t.Fatal("dangling commit stored something")
		}
		// Referencing an oid stored later in the same transaction is fine.
		if _, st := c.commit(rec(o[0], "a", o[1]), rec(o[1], "b", o[0]), rec(0, "root2", o[0])); st != 'O' {
			t.Fatalf("forward ref: %q", st)
		}
	})
}

// C33: a len above the limit is consumed and answered E.
func TestCommitOverLimit(t *testing.T) {
	ts := startServer(t, Config{MaxCommit: 1000}, newMemStore())
	c := ts.dial(t)
	other := ts.dial(t)
	c.begin()
	// The token is released at once: another commit proceeds meanwhile.
	c.send(u32(5000), make([]byte, 2000))
	if _, st := other.commit(rec(0, "root")); st != 'O' {
		t.Fatalf("other commit: %q", st)
	}
	c.send(make([]byte, 3000))
	c.status('E')
	c.send([]byte{'N'})
	c.read(8)
}

// C34: disconnect mid-commit stores nothing and frees the token. The lease
// is a minute, so a token freed only by its lease makes B wait past the
// 30 s bound (a bound that catches that, not a speed threshold).
func TestCommitDisconnect(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{CommitLease: time.Minute}, open(t))
		b := ts.dial(t)
		b.newOIDs(1)
		if _, st := b.commit(rec(0, "r")); st != 'O' {
			t.Fatal(st)
		}
		for _, partial := range [][]byte{nil, u32(100)[:2], append(u32(100), 1, 2, 3)} {
			a := ts.dial(t)
			o := a.newOIDs(1)[0]
			a.begin()
			a.send(partial)
			a.nc.Close()
			start := time.Now()
			if _, st := b.commit(rec(0, "r")); st != 'O' {
				t.Fatal(st)
			}
			if el := time.Since(start); el > 30*time.Second {
				t.Fatalf("commit after disconnect took %v: the token waited for its lease", el)
			}
			if st, _ := b.load(o); st != 'K' {
				t.Fatal("partial commit stored")
			}
		}
	})
}

// C35: B waits while A holds the token; B's phase 1 then lists A's oids.
func TestCommitToken(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		a := ts.dial(t)
		b := ts.dial(t)
		x := a.newOIDs(1)[0]
		a.begin()
		b.send([]byte{'C'})
		b.expectSilence(200 * time.Millisecond) // waiting for the token
		// Loads go on meanwhile.
		cc := ts.dial(t)
		if st, _ := cc.load(x); st != 'K' {
			t.Fatal(st)
		}
		if st := a.commitData(txnData(rec(x, "a"))); st != 'O' {
			t.Fatal(st)
		}
		if inv := b.oidList(); !slices.Equal(inv, []uint64{x}) {
			t.Fatalf("B's phase 1: %v", inv)
		}
		b.send(u32(0))
	})
}

// C36: the lease revokes a stalled holder; its late transaction gets I.
func TestCommitLease(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{CommitLease: 200 * time.Millisecond, RequestTimeout: time.Minute}, open(t))
		a := ts.dial(t)
		b := ts.dial(t)
		o := a.newOIDs(2)
		if _, st := a.commit(rec(o[0], "v1")); st != 'O' {
			t.Fatal(st)
		}
		a.begin() // holds the token, stalls
		start := time.Now()
		if _, st := b.commit(rec(o[0], "by-b")); st != 'O' {
			t.Fatalf("B: %q", st)
		}
		// At least the lease (less a margin for clock granularity); the
		// upper bound only catches a holder never revoked.
		if el := time.Since(start); el > 30*time.Second || el < 150*time.Millisecond {
			t.Fatalf("B waited %v, want about the lease", el)
		}
		if st := a.commitData(txnData(rec(o[1], "late"))); st != 'I' {
			t.Fatalf("A's late commit: %q, want I", st)
		}
		if st, _ := a.load(o[1]); st != 'K' {
			t.Fatal("late commit stored")
		}
		// A revoked holder whose transaction arrives when nothing was
		// applied meanwhile is processed normally.
		a.sync()
		a.begin()
		time.Sleep(300 * time.Millisecond) // past the lease, nobody waits
		if st := a.commitData(txnData(rec(o[1], "fine"))); st != 'O' {
			t.Fatalf("A's commit without competition: %q", st)
		}
		tok := ts.srv.Token()
		if tok.Revocations() != 1 {
			t.Fatalf("revocations %d", tok.Revocations())
		}
	})
}

// C39, A5: root release.
func TestRootRelease(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		a := ts.dial(t)
		if o := a.newOIDs(32); o[0] != 0 {
			t.Fatal(o[0])
		}
		b := ts.dial(t)
		if o := b.newOIDs(1); o[0] == 0 {
			t.Fatal("root handed out twice while held")
		}
		a.nc.Close()
		waitFor(t, 30*time.Second, "A to close", func() bool { return ts.srv.NumConns() == 1 })
		c := ts.dial(t)
		o := c.newOIDs(32)
		if o[0] != 0 || o[1] != 33 || o[31] != 63 {
			t.Fatalf("after release: %v", o)
		}
		if _, st := c.commit(rec(0, "root")); st != 'O' {
			t.Fatal(st)
		}
		c.nc.Close()
		d := ts.dial(t)
		if o := d.newOIDs(1); o[0] == 0 {
			t.Fatal("root handed out after it was stored")
		}
	})
}

// C48 with the fake (read-only): L, B, S, M answer; commit → E; P → O, no pack.
func TestReadOnly(t *testing.T) {
	m := newMemStore()
	m.recs[0] = rec(0, "root")
	m.cursor = 10
	m.readOnly = true
	ts := startServer(t, Config{}, m)
	c := ts.dial(t)
	if st, r := c.load(0); st != 'O' || !bytes.Equal(r, rec(0, "root")) {
		t.Fatal(st)
	}
	c.send([]byte{'B'}, u32(2), u64(0), u64(1))
	if st, _ := c.loadResponse(); st != 'O' {
		t.Fatal(st)
	}
	if st, _ := c.loadResponse(); st != 'K' {
		t.Fatal(st)
	}
	if o := c.newOIDs(2); o[0] != 10 || o[1] != 11 {
		t.Fatalf("read-only oids %v", o)
	}
	if o := c.newOIDs(1); o[0] != 12 {
		t.Fatalf("read-only oids %v", o)
	}
	c.sync()
	if _, st := c.commit(rec(0, "new root")); st != 'E' {
		t.Fatalf("read-only commit: %q", st)
	}
	c.begin()
	c.send(u32(0)) // no reply
	c.send([]byte{'P'})
	c.status('O')
	if m.packs.Load() != 0 {
		t.Fatal("read-only pack started")
	}
	if st, r := c.load(0); st != 'O' || !bytes.Equal(r, rec(0, "root")) {
		t.Fatal("database changed")
	}
}

// Rule 11: a storage failure answers E and keeps the connection.
func TestCommitStorageFailure(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{}, m)
	c := ts.dial(t)
	m.commitErr = errTest
	if _, st := c.commit(rec(0, "r")); st != 'E' {
		t.Fatalf("status %q", st)
	}
	m.commitErr = nil
	if _, st := c.commit(rec(0, "r")); st != 'O' {
		t.Fatalf("status %q", st)
	}
	if !containsLog(ts, "rule=11") {
		t.Fatal("failure not logged")
	}
}

// Refusals decided when the queued commit is applied, after the token has
// passed on, answer as if decided before: I for a dangling reference (rule
// 10), E for a storage failure (rule 11); the connection stays usable.
func TestCommitRefusedAtApply(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{}, m)
	c := ts.dial(t)
	if _, st := c.commit(rec(0, "r")); st != 'O' {
		t.Fatalf("root: %q", st)
	}
	for _, tc := range []struct {
		err  error
		want byte
		rule string
	}{
		{fmt.Errorf("oid 7: %w", ErrDangling), 'I', "rule=10"},
		{errTest, 'E', "rule=11"},
	} {
		m.applyErr = tc.err
		if _, st := c.commit(rec(0, "r2")); st != tc.want {
			t.Fatalf("apply error %v: status %q, want %q", tc.err, st, tc.want)
		}
		if !containsLog(ts, tc.rule) {
			t.Fatalf("apply error %v: no log line with %s", tc.err, tc.rule)
		}
		m.applyErr = nil
		if _, st := c.commit(rec(0, "r3")); st != 'O' {
			t.Fatalf("after %v: status %q", tc.err, st)
		}
	}
}

// O only after durability; the token is released before the wait, so
// commits of other connections overlap the wait (group commit).
func TestDurabilityWaitOutsideToken(t *testing.T) {
	const delay, n = time.Second, 4
	m := newMemStore()
	m.waitDelay = delay
	ts := startServer(t, Config{}, m)
	clients := make([]*client, n)
	oids := make([]uint64, n)
	for i := range clients {
		clients[i] = ts.dial(t)
		oids[i] = clients[i].newOIDs(1)[0]
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		oid := oids[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.send([]byte{'C'})
			c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			var k [4]byte
			if _, err := readFull(c.nc, k[:]); err != nil {
				t.Error(err)
				return
			}
			if _, err := readFull(c.nc, make([]byte, 8*int(binary.BigEndian.Uint32(k[:])))); err != nil {
				t.Error(err)
				return
			}
			data := txnData(rec(oid, "x"))
			c.nc.Write(append(u32(uint32(len(data))), data...))
			var b [1]byte
			if _, err := readFull(c.nc, b[:]); err != nil || b[0] != 'O' {
				t.Errorf("commit %d: %q %v", i, b[0], err)
			}
		}()
	}
	wg.Wait()
	// Both bounds are what the designs take at least, not speeds:
	// acknowledging before the wait takes less than one delay; waits
	// under the token take n delays one after the other.
	el := time.Since(start)
	if el < delay {
		t.Fatalf("acknowledged before durable: %v", el)
	}
	if el >= n*delay {
		t.Fatalf("durability waits serialised: %v for %d commits", el, n)
	}
}

// A panic while serving ends that connection only.
func TestPanicIsolated(t *testing.T) {
	m := newMemStore()
	var once sync.Once
	m.onCommit = func() { once.Do(func() { panic("boom") }) }
	ts := startServer(t, Config{}, m)
	a := ts.dial(t)
	b := ts.dial(t)
	a.begin()
	a.send(u32(uint32(len(txnData(rec(0, "r"))))), txnData(rec(0, "r")))
	a.expectClosed(30 * time.Second)
	// The token was released: B commits.
	if _, st := b.commit(rec(0, "r")); st != 'O' {
		t.Fatal(st)
	}
	if !containsLog(ts, "panic") {
		t.Fatal("panic not logged")
	}
}

// Pipelined requests are all answered, in order.
func TestPipelining(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		c := ts.dial(t)
		root := rec(0, "root")
		var req []byte
		req = append(req, 'V')
		req = append(req, u32(1)...)
		req = append(req, 'M', 2)
		req = append(req, 'C')
		data := txnData(root)
		req = append(req, u32(uint32(len(data)))...)
		req = append(req, data...)
		for range 100 {
			req = append(req, 'L')
			req = append(req, u64(0)...)
		}
		req = append(req, 'S')
		c.send(req)
		c.expect(u32(1))
		c.expect(append(u64(0), u64(1)...))
		c.expect(u32(0))
		c.status('O')
		for range 100 {
			if st, r := c.loadResponse(); st != 'O' || !bytes.Equal(r, root) {
				t.Fatal(st)
			}
		}
		c.expect(u32(0))
	})
}

// C53: requests split into 1-byte writes.
func TestOneByteWrites(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		c := ts.dial(t)
		trickle := func(b []byte) {
			for i := range b {
				c.send(b[i : i+1])
			}
		}
		trickle(append([]byte{'V'}, u32(1)...))
		c.expect(u32(1))
		trickle([]byte{'M', 3})
		o := c.read(24)
		x := binary.BigEndian.Uint64(o[8:])
		trickle([]byte{'C'})
		c.expect(u32(0))
		data := txnData(rec(0, "root", x), rec(x, "x"))
		trickle(append(u32(uint32(len(data))), data...))
		c.status('O')
		trickle(append([]byte{'B'}, append(u32(2), append(u64(x), u64(0)...)...)...))
		if st, r := c.loadResponse(); st != 'O' || !bytes.Equal(r, rec(x, "x")) {
			t.Fatal(st)
		}
		if st, r := c.loadResponse(); st != 'O' || !bytes.Equal(r, rec(0, "root", x)) {
			t.Fatal(st)
		}
		trickle(append([]byte{'L'}, u64(x)...))
		if st, _ := c.loadResponse(); st != 'O' {
			t.Fatal(st)
		}
		trickle([]byte{'S'})
		c.expect(u32(0))
		trickle([]byte{'P'})
		c.status('O')
	})
}

// C56: 5 MB records and 10,000-record commits round-trip.
func TestLargeCommits(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		c := ts.dial(t)
		oids := c.newOIDs(255)
		big := make([]byte, 5<<20)
		for i := range big {
			big[i] = byte(i * 7)
		}
		bigRec := record.Build(oids[0], big)
		if _, st := c.commit(bigRec); st != 'O' {
			t.Fatal(st)
		}
		if st, r := c.load(oids[0]); st != 'O' || !bytes.Equal(r, bigRec) {
			t.Fatal("5 MB record differs")
		}
		var all []uint64
		for len(all) < 10000 {
			all = append(all, c.newOIDs(255)...)
		}
		all = all[:10000]
		recs := make([][]byte, len(all))
		for i, o := range all {
			recs[i] = rec(o, "r"+string(rune('a'+i%26)), oids[0])
		}
		if _, st := c.commit(recs...); st != 'O' {
			t.Fatal(st)
		}
		var req []byte
		req = append(req, 'B')
		req = append(req, u32(uint32(len(all)))...)
		for _, o := range all {
			req = append(req, u64(o)...)
		}
		c.send(req)
		for i := range all {
			if st, r := c.loadResponse(); st != 'O' || !bytes.Equal(r, recs[i]) {
				t.Fatalf("record %d differs", i)
			}
		}
		// Another connection was told about all 10,000 + 1 oids.
		d := ts.dial(t)
		_ = d
	})
}

// C55: exceeding the invalid-set cap closes that connection only.
func TestInvalidCap(t *testing.T) {
	ts := startServer(t, Config{MaxInvalid: 100}, newMemStore())
	a := ts.dial(t)
	victim := ts.dial(t)
	victim.send([]byte{'N'})
	victim.read(8)
	var recs [][]byte
	for _, o := range a.newOIDs(150) {
		recs = append(recs, rec(o, "x"))
	}
	if _, st := a.commit(recs[:60]...); st != 'O' {
		t.Fatal(st)
	}
	victim.send([]byte{'L'}, u64(record.OID(recs[0])))
	if st, _ := victim.loadResponse(); st != 'I' && st != 'K' {
		t.Fatal(st)
	}
	if _, st := a.commit(recs[60:]...); st != 'O' {
		t.Fatal(st)
	}
	victim.expectClosed(30 * time.Second)
	a.send([]byte{'N'})
	a.read(8)
	if !containsLog(ts, "I7") {
		t.Fatal("I7 not logged")
	}
}

// Unused cap: a connection that hoards oids is closed.
func TestUnusedCap(t *testing.T) {
	ts := startServer(t, Config{MaxUnused: 300}, newMemStore())
	a := ts.dial(t)
	a.newOIDs(255)
	a.send([]byte{'M', 255})
	a.expectClosed(30 * time.Second)
	b := ts.dial(t)
	b.newOIDs(255) // a's oids were released; b has its own cap
}

// C15: Q stops the server; the address stops accepting at once.
func TestQuit(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	idle := ts.dial(t)
	c := ts.dial(t)
	c.send([]byte{'Q'})
	c.expectClosed(30 * time.Second)
	select {
	case <-ts.done:
		ts.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after Q")
	}
	idle.expectClosed(30 * time.Second)
	if nc, err := dialQuick(ts.addr); err == nil {
		nc.Close()
		t.Fatal("still accepting after Q")
	}
}

// --no-quit: Q closes that connection only.
func TestNoQuit(t *testing.T) {
	ts := startServer(t, Config{NoQuit: true}, newMemStore())
	c := ts.dial(t)
	c.send([]byte{'Q'})
	c.expectClosed(30 * time.Second)
	d := ts.dial(t)
	d.send([]byte{'N'})
	d.read(8)
}

// Max connections: extra connections are closed at once.
func TestMaxConnections(t *testing.T) {
	ts := startServer(t, Config{MaxConnections: 2}, newMemStore())
	a, b := ts.dial(t), ts.dial(t)
	a.send([]byte{'N'})
	a.read(8)
	b.send([]byte{'N'})
	b.read(8)
	c := ts.dialRaw(t)
	c.expectClosed(30 * time.Second)
	a.nc.Close()
	waitFor(t, 30*time.Second, "a to close", func() bool { return ts.srv.NumConns() == 1 })
	d := ts.dial(t)
	d.send([]byte{'N'})
	d.read(8)
}

// Shutdown finishes a commit whose data has arrived.
func TestShutdownFinishesCommit(t *testing.T) {
	m := newMemStore()
	m.waitDelay = 500 * time.Millisecond
	ts := startServer(t, Config{}, m)
	c := ts.dial(t)
	c.begin()
	data := txnData(rec(0, "r"))
	c.send(u32(uint32(len(data))), data)
	waitFor(t, 30*time.Second, "commit applied", func() bool { return m.commits.Load() == 1 })
	ts.srv.Close()
	c.status('O')
	c.expectClosed(30 * time.Second)
}

// C39 race: the stock client's close() sends "." and disconnects; a client
// asking for oids right after still gets ROOT_OID.
func TestRootReleaseRace(t *testing.T) {
	forEachStore(t, func(t *testing.T, open func(testing.TB) Storage) {
		ts := startServer(t, Config{}, open(t))
		next := ts.dial(t)
		for i := range 5 {
			a := ts.dial(t)
			if o := a.newOIDs(32); i == 0 && o[0] != 0 {
				t.Fatal(o[0])
			}
			a.send([]byte{'.'})
			a.nc.Close()
			if o := next.newOIDs(1); o[0] != 0 {
				t.Fatalf("round %d: first oid %d after the holder left, want 0", i, o[0])
			}
			next.nc.Close()
			next = ts.dial(t)
		}
	})
}

// C47, G8: --gcbytes starts a full collection once enough bytes were
// committed.
func TestGCBytes(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{GCBytes: 300}, m) // 72 bytes per commit below
	c := ts.dial(t)
	o := c.newOIDs(10)
	for i := 1; i < 5; i++ {
		if _, st := c.commit(rec(o[i], "0123456789012345678901234567890123456789")); st != 'O' {
			t.Fatal(st)
		}
	}
	if m.packs.Load() != 0 {
		t.Fatal("packed too early")
	}
	for i := 5; i < 8; i++ {
		if _, st := c.commit(rec(o[i], "0123456789012345678901234567890123456789")); st != 'O' {
			t.Fatal(st)
		}
	}
	if m.packs.Load() != 1 {
		t.Fatalf("packs %d, want 1", m.packs.Load())
	}
}

// C59 (server side), rule 8: a VerifyRefs failure refuses the commit with E.
func TestVerifyRefs(t *testing.T) {
	ts := startServer(t, Config{VerifyRefs: func(oid uint64, r []byte) error {
		if bytes.Contains(r, []byte("bad")) {
			return errTest
		}
		return nil
	}}, newMemStore())
	c := ts.dial(t)
	o := c.newOIDs(3)
	if _, st := c.commit(rec(o[1], "good"), rec(o[2], "bad")); st != 'E' {
		t.Fatalf("status %q", st)
	}
	if st, _ := c.load(o[1]); st != 'K' {
		t.Fatal("stored")
	}
	if _, st := c.commit(rec(o[1], "good")); st != 'O' {
		t.Fatalf("status %q", st)
	}
	if !containsLog(ts, "rule=8") {
		t.Fatal("rule 8 not logged")
	}
}

// Shutdown ends idle connections, connections in the middle of a request and
// connections waiting for the commit token at once; nothing partial is stored.
func TestShutdownPrompt(t *testing.T) {
	m := newMemStore()
	ts := startServer(t, Config{RequestTimeout: time.Minute, ShutdownTimeout: time.Minute, CommitLease: time.Minute}, m)
	idle := ts.dial(t)
	half := ts.dial(t)
	half.send([]byte{'L', 0, 0})
	holder := ts.dial(t)
	o := holder.newOIDs(1)[0]
	holder.begin()
	holder.send(u32(100), make([]byte, 20)) // data incomplete
	waiter := ts.dial(t)
	waiter.send([]byte{'C'})
	waiter.expectSilence(50 * time.Millisecond)
	start := time.Now()
	ts.srv.Close()
	for _, c := range []*client{idle, half, holder, waiter} {
		c.expectClosed(30 * time.Second)
	}
	select {
	case <-ts.done:
		ts.done <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	// The timeouts are a minute: a shutdown that waited for one of them
	// instead of ending the connections at once takes longer than this.
	if el := time.Since(start); el > 30*time.Second {
		t.Fatalf("shutdown took %v", el)
	}
	if _, err := m.Load(o); err == nil || m.commits.Load() != 0 {
		t.Fatal("partial commit stored")
	}
}
