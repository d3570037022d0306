package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
)

// pathConns returns a server over st (not serving) and n connections
// registered with it, as startConn would, for driving its commitPath
// directly.
func pathConns(t *testing.T, cfg Config, st Storage, n int) (*Server, []*conn) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(cfg, st)
	var conns []*conn
	for i := range n {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		c := newConn(s, a, uint64(i+1), "pipe")
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		conns = append(conns, c)
	}
	return s, conns
}

// parsed returns the frames of a commit of recs, checked by rules 3–5 and 8.
func parsed(t *testing.T, p *commitPath, recs ...[]byte) (frames, []uint64) {
	t.Helper()
	f, sorted, fe := p.checkFrames(txnData(recs...))
	if fe != nil {
		t.Fatalf("rule %d: %s", fe.rule, fe.msg)
	}
	return f, sorted
}

// fanOutObserver calls at when the invalidation fan-out reports; no other
// event may happen.
type fanOutObserver struct {
	Observer
	at func()
}

func (o fanOutObserver) Invalidated(uint64, int) { o.at() }

// TestCommitPathAnnounce: announce takes the committed oids out of the
// committer's unused set and invalidates them for every other connection
// (not the committer) while the token is still held, and only then passes
// the token on (one more in its sequence); restoreUnused gives them back.
func TestCommitPathAnnounce(t *testing.T) {
	ctx := context.Background()
	var seqAtFanOut uint64
	var heldAtFanOut bool
	var s *Server
	var committer *conn
	obs := fanOutObserver{at: func() {
		seqAtFanOut, heldAtFanOut = s.token.Seq(), committer.hold != nil
	}}
	s, cs := pathConns(t, Config{Observer: obs}, newMemStore(), 2)
	committer, other := cs[0], cs[1]
	p := &s.commitPath
	b, err := p.alloc(ctx, committer, 3, nil)
	if err != nil || len(b) != 24 {
		t.Fatalf("alloc: %d bytes, %v", len(b), err)
	}
	oid := record.OID(b[8:]) // not ROOT_OID, which is the first

	hold, err := p.token.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	committer.hold = hold
	seq := hold.Seq()
	f, sorted := parsed(t, p, rec(oid, "x"))
	if r, err := p.pin(ctx, committer, seq, f); r != nil || err != nil {
		t.Fatalf("pin: %v, %v", r, err)
	}
	l := allocLock{mu: &p.allocMu}
	if r := p.admit(&l, committer, seq, f, sorted); r != nil {
		t.Fatalf("admit refused: rule %d", r.rule)
	}
	if l.held {
		t.Fatal("allocMu kept by a commit without ROOT_OID")
	}
	taken := p.announce(&l, committer, sorted, false)

	if !heldAtFanOut || seqAtFanOut != seq {
		t.Fatalf("invalidations sent after the token passed (held %v, seq %d, want %d)", heldAtFanOut, seqAtFanOut, seq)
	}
	if got := p.token.Seq(); got != seq+1 || committer.hold != nil {
		t.Fatalf("token not passed on: seq %d, want %d; hold kept %v", got, seq+1, committer.hold != nil)
	}
	if !other.isInvalid(oid) || committer.isInvalid(oid) {
		t.Fatalf("invalid: other %v (want true), committer %v (want false)", other.isInvalid(oid), committer.isInvalid(oid))
	}
	if runsLen(taken) != 1 || committer.unusedN != 2 || p.owners.owner(oid) != nil {
		t.Fatalf("unused set: taken %v, %d left (want 2), owner %v", taken, committer.unusedN, p.owners.owner(oid))
	}
	p.restoreUnused(committer, taken)
	if committer.unusedN != 3 || p.owners.owner(oid) != committer {
		t.Fatalf("restoreUnused: %d oids, owner %v", committer.unusedN, p.owners.owner(oid))
	}
}

// TestCommitPathAdmit: rule 7 (an oid in another connection's unused
// set) and rule 6 (an oid never handed out) answer E, rule 9 (a commit
// passed since phase 1) answers I, and the root's first commit keeps
// allocMu; no refusal leaves it held.
func TestCommitPathAdmit(t *testing.T) {
	ctx := context.Background()
	s, cs := pathConns(t, Config{}, newMemStore(), 2)
	a, b := cs[0], cs[1]
	p := &s.commitPath
	if _, err := p.alloc(ctx, a, 2, nil); err != nil { // ROOT_OID and 1
		t.Fatal(err)
	}
	if _, err := p.alloc(ctx, b, 1, nil); err != nil { // 2
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		oid    uint64
		seq    uint64
		rule   int
		status byte
		held   bool
	}{
		{"another's oid", 2, 0, 7, statusRefused, false},
		{"never handed out", 9, 0, 6, statusRefused, false},
		{"commit since phase 1", 1, 1, 9, statusInvalid, false},
		{"own oid", 1, 0, 0, 0, false},
		{"root's first commit", record.RootOID, 0, 0, 0, true},
	}
	for _, tc := range cases {
		f, sorted := parsed(t, p, rec(tc.oid, "x"))
		l := allocLock{mu: &p.allocMu}
		r := p.admit(&l, a, p.token.Seq()-tc.seq, f, sorted)
		switch {
		case tc.rule == 0 && r != nil:
			t.Errorf("%s: refused by rule %d", tc.name, r.rule)
		case tc.rule != 0 && (r == nil || r.rule != tc.rule || r.status != tc.status):
			t.Errorf("%s: got %+v, want rule %d, reply %c", tc.name, r, tc.rule, tc.status)
		}
		if l.held != tc.held {
			t.Errorf("%s: allocMu held %v, want %v", tc.name, l.held, tc.held)
		}
		l.unlock()
	}
}

// TestHandoffPending: a committer yields to the token's next holder
// (Hold.Handoff) only when its own wait is just its apply: not in sync
// mode, where it may lead the group flush every commit of the group waits
// for, and not for a storage that does not say.
func TestHandoffPending(t *testing.T) {
	for _, tc := range []struct {
		d    kv.Durability
		want bool
	}{{kv.Sync, false}, {kv.WriteNoSync, true}, {kv.NoSync, true}} {
		st := openEngine(t, "leveldb", engine.Options{Durability: tc.d})
		p, err := st.Stage(context.Background(), [][]byte{rec(0, "root")})
		if err != nil {
			t.Fatal(err)
		}
		if got := handoffPending(p); got != tc.want {
			t.Errorf("durability %v: handoffPending = %v, want %v", tc.d, got, tc.want)
		}
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if handoffPending(memPending{}) {
		t.Error("a Pending that does not tell whether it flushes: handoffPending = true, want false")
	}
}
