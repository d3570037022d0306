package server

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// recObserver records every Observer event.
type recObserver struct {
	mu          sync.Mutex
	opened      []string
	closed      map[string]string // remote -> reason
	requests    map[byte]int
	loads       map[byte]int
	commits     []CommitResult
	invalidated uint64 // oids × connections
	invalidSent uint64
	read        int64
	written     int64
	errors      map[ErrorKind]int
}

func newRecObserver() *recObserver {
	return &recObserver{closed: map[string]string{}, requests: map[byte]int{}, loads: map[byte]int{}, errors: map[ErrorKind]int{}}
}

func (o *recObserver) ConnOpened(remote string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opened = append(o.opened, remote)
}

func (o *recObserver) ConnClosed(remote, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed[remote] = reason
}

func (o *recObserver) Request(cmd byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests[cmd]++
}

func (o *recObserver) Load(status byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.loads[status]++
}

func (o *recObserver) Commit(r CommitResult) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.commits = append(o.commits, r)
}

func (o *recObserver) Invalidated(oids uint64, conns int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.invalidated += oids * uint64(conns)
}

func (o *recObserver) InvalidSent(oids uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.invalidSent += oids
}

func (o *recObserver) BytesRead(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.read += int64(n)
}

func (o *recObserver) BytesWritten(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.written += int64(n)
}

func (o *recObserver) Error(kind ErrorKind) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errors[kind]++
}

func (o *recObserver) errorCount(k ErrorKind) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.errors[k]
}

func (o *recObserver) lastCommit() CommitResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.commits) == 0 {
		return CommitResult{}
	}
	return o.commits[len(o.commits)-1]
}

// logLine reports whether the server logged a line containing all parts.
func logLine(ts *testServer, parts ...string) bool {
outer:
	for _, line := range strings.Split(ts.logs.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue outer
			}
		}
		return true
	}
	return false
}

// TestObserverEvents checks the events of connections, loads, commits and
// invalidations, and that a nil observer is fine (every other test).
func TestObserverEvents(t *testing.T) {
	obs := newRecObserver()
	st := newMemStore()
	st.waitDelay = 20 * time.Millisecond
	ts := startServer(t, Config{Observer: obs, MaxCommit: 1000}, st)
	c1 := ts.dial(t)
	c2 := ts.dial(t)

	o := c1.newOIDs(2)
	data := txnData(rec(o[0], "root", o[1]), rec(o[1], "child"))
	c1.begin()
	if s := c1.commitData(data); s != 'O' {
		t.Fatalf("commit: %q", s)
	}
	r := obs.lastCommit()
	if r.Status != 'O' || r.Rule != 0 || r.Records != 2 || r.Bytes != int64(len(data)) {
		t.Errorf("commit result %+v", r)
	}
	if r.Durable < st.waitDelay || r.Total < r.Durable+r.Apply || r.TokenWait < 0 || r.Apply < 0 {
		t.Errorf("commit timings %+v (durability wait %v)", r, st.waitDelay)
	}
	if inv := c2.sync(); len(inv) != 2 {
		t.Fatalf("sync: %v", inv)
	}
	if s, _ := c2.load(o[1]); s != 'O' {
		t.Fatal(s)
	}
	if s, _ := c2.load(999); s != 'K' {
		t.Fatal(s)
	}
	if _, s := c1.commit(rec(o[1], "v2")); s != 'O' {
		t.Fatal(s)
	}
	if s, _ := c2.load(o[1]); s != 'I' {
		t.Fatal(s)
	}
	c2.send([]byte{'B'}, u32(2), u64(o[0]), u64(999))
	for _, want := range []byte{'O', 'K'} {
		if s, _ := c2.loadResponse(); s != want {
			t.Fatalf("bulk: %q, want %q", s, want)
		}
	}
	// Refusals: rule 5 (same oid twice, E), rule 10 (dangling, I), rule 1
	// (over MaxCommit, E, data discarded), rule 11 (storage failure, E).
	if _, s := c1.commit(rec(o[1], "a"), rec(o[1], "b")); s != 'E' {
		t.Fatal(s)
	}
	if r := obs.lastCommit(); r.Status != 'E' || r.Rule != 5 || r.Records != 2 || r.Durable != 0 {
		t.Errorf("duplicate oid: %+v", r)
	}
	if _, s := c1.commit(rec(o[1], "dangling", 555)); s != 'I' {
		t.Fatal(s)
	}
	if r := obs.lastCommit(); r.Status != 'I' || r.Rule != 10 {
		t.Errorf("dangling: %+v", r)
	}
	c1.begin()
	c1.send(u32(2000), make([]byte, 2000))
	if s := c1.read(1)[0]; s != 'E' {
		t.Fatal(s)
	}
	if r := obs.lastCommit(); r.Status != 'E' || r.Rule != 1 || r.Records != 0 || r.Bytes != 2000 || r.Apply != 0 {
		t.Errorf("over the commit limit: %+v", r)
	}
	st.mu.Lock()
	st.commitErr = errTest
	st.mu.Unlock()
	if _, s := c1.commit(rec(o[1], "v3")); s != 'E' {
		t.Fatal(s)
	}
	if r := obs.lastCommit(); r.Status != 'E' || r.Rule != 11 {
		t.Errorf("storage failure: %+v", r)
	}
	if obs.errorCount(ErrStorageCommit) != 1 {
		t.Errorf("storage failure not reported as an error")
	}
	r1 := c1.nc.LocalAddr().String()
	if !logLine(ts, "level=ERROR", "commit failed in the storage", "remote="+r1) {
		t.Errorf("storage failure log line without the client address")
	}
	r2 := c2.nc.LocalAddr().String()
	c1.nc.Close()
	c2.nc.Close()
	waitFor(t, 5*time.Second, "connections closed", func() bool { return ts.srv.NumConns() == 0 })
	ts.stop(t)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.opened) != 2 || len(obs.closed) != 2 || obs.closed[r1] != "disconnected" || obs.closed[r2] != "disconnected" {
		t.Errorf("opened %v, closed %v", obs.opened, obs.closed)
	}
	want := map[byte]int{'O': 2, 'K': 2, 'I': 1}
	for s, n := range want {
		if obs.loads[s] != n {
			t.Errorf("loads %q: %d, want %d", s, obs.loads[s], n)
		}
	}
	if obs.requests['C'] != 6 || obs.requests['L'] != 3 || obs.requests['B'] != 1 || obs.requests['M'] != 1 || obs.requests['S'] != 3 {
		t.Errorf("requests %v", obs.requests)
	}
	// First commit: 2 oids to c2; second: 1 oid.
	if obs.invalidated != 3 || obs.invalidSent != 2 {
		t.Errorf("invalidated %d, sent %d; want 3, 2", obs.invalidated, obs.invalidSent)
	}
	if obs.read < int64(len(data)) || obs.written < 100 {
		t.Errorf("bytes read %d, written %d", obs.read, obs.written)
	}
	if len(obs.commits) != 6 {
		t.Errorf("%d commit results, want 6", len(obs.commits))
	}
}

// TestObserverErrors provokes each connection-level error kind and checks
// it is reported once, with a log line naming the client address.
func TestObserverErrors(t *testing.T) {
	obs := newRecObserver()
	ts := startServer(t, Config{Observer: obs, RequestTimeout: 200 * time.Millisecond, MaxBulk: 10, MaxConnections: 3}, newMemStore())
	cases := []struct {
		kind   ErrorKind
		send   []byte
		reply  int // bytes answered before the close
		reason string
		log    string
	}{
		{ErrProtocol, []byte{'Z'}, 0, "unknown command", "unknown command byte"},
		{ErrProtocol, append([]byte{'V'}, u32(2)...), 4, "protocol mismatch", "client protocol not supported"},
		{ErrLimit, append([]byte{'B'}, u32(11)...), 0, "bulk count over the limit", "bulk load count over the limit"},
		{ErrTimeout, []byte{'L', 0, 0, 0}, 0, "timeout", "request timed out"},
		{ErrDisconnect, []byte{'L', 0, 0}, 0, "disconnected mid-request", "client disconnected inside a request"},
	}
	for _, tc := range cases {
		before := obs.errorCount(tc.kind)
		c := ts.dial(t)
		remote := c.nc.LocalAddr().String()
		c.send(tc.send)
		c.read(tc.reply)
		if tc.kind == ErrDisconnect {
			c.nc.Close()
		} else {
			c.expectClosed(5 * time.Second)
		}
		waitFor(t, 5*time.Second, "close of "+tc.reason, func() bool {
			obs.mu.Lock()
			defer obs.mu.Unlock()
			return obs.closed[remote] != ""
		})
		obs.mu.Lock()
		reason := obs.closed[remote]
		obs.mu.Unlock()
		if reason != tc.reason {
			t.Errorf("%v: close reason %q, want %q", tc.kind, reason, tc.reason)
		}
		if got := obs.errorCount(tc.kind); got != before+1 {
			t.Errorf("%v: %d errors reported, want %d", tc.kind, got, before+1)
		}
		if !logLine(ts, "level=WARN", tc.log, "remote="+remote) {
			t.Errorf("%v: no warning %q naming %s", tc.kind, tc.log, remote)
		}
		if !logLine(ts, "connection closed", "remote="+remote) || !logLine(ts, "connection opened", "remote="+remote) {
			t.Errorf("%v: open/close lines do not name %s", tc.kind, remote)
		}
	}

	// MaxConnections: the fourth connection is refused.
	for range 3 {
		ts.dial(t)
	}
	c := ts.dialRaw(t)
	c.expectClosed(5 * time.Second)
	waitFor(t, 5*time.Second, "refusal reported", func() bool { return obs.errorCount(ErrMaxConnections) == 1 })
	if !logLine(ts, "too many connections", "remote="+c.nc.LocalAddr().String()) {
		t.Errorf("refusal log line does not name the client")
	}

	// A durability failure closes the connection without a reply.
	obs2 := newRecObserver()
	st := newMemStore()
	st.waitErr = errTest
	ts2 := startServer(t, Config{Observer: obs2}, st)
	c2 := ts2.dial(t)
	o := c2.newOIDs(1)
	c2.begin()
	c2.send(u32(uint32(len(txnData(rec(o[0], "x"))))), txnData(rec(o[0], "x")))
	c2.expectClosed(5 * time.Second)
	waitFor(t, 5*time.Second, "durability error", func() bool { return obs2.errorCount(ErrDurability) == 1 })
	if !logLine(ts2, "level=ERROR", "not made durable", "remote="+c2.nc.LocalAddr().String()) {
		t.Errorf("durability failure log line does not name the client")
	}
	if n := len(obs2.commits); n != 0 {
		t.Errorf("%d commit results for an undurable commit", n)
	}

	for k := range NumErrorKinds {
		if s := k.String(); s == "unknown" || s == "" {
			t.Errorf("error kind %d has no name", k)
		}
	}
	if NumErrorKinds.String() != "unknown" {
		t.Errorf("NumErrorKinds has a name")
	}
}
