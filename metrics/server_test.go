package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/wire"
	"github.com/durusbdb/durusbdb/server"
)

// countConn counts the bytes moved over a connection, which the server's
// byte counters must match exactly.
type countConn struct {
	net.Conn
	sent, received *int64
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	*c.sent += int64(n)
	return n, err
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	*c.received += int64(n)
	return n, err
}

// rawClient is an internal/wire client over a countConn that fails the
// test on any I/O error.
type rawClient struct {
	t  testing.TB
	nc net.Conn // the counting connection
	w  *wire.Conn
}

func dialRaw(t testing.TB, addr string, sent, received *int64) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	cc := countConn{Conn: nc, sent: sent, received: received}
	return &rawClient{t: t, nc: cc, w: wire.NewConn(cc, 10*time.Second)}
}

func (c *rawClient) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) sync() []uint64 {
	c.t.Helper()
	inv, err := c.w.Sync()
	c.must(err)
	return inv
}

func (c *rawClient) newOIDs(k int) []uint64 {
	c.t.Helper()
	oids, err := c.w.NewOIDs(k)
	c.must(err)
	return oids
}

// commit runs both phases and returns the phase 1 invalid list and the
// status byte.
func (c *rawClient) commit(recs ...[]byte) ([]uint64, byte) {
	c.t.Helper()
	inv, st, err := c.w.Commit(recs)
	c.must(err)
	return inv, st
}

func (c *rawClient) load(oid uint64) byte {
	c.t.Helper()
	st, _, err := c.w.Load(oid)
	c.must(err)
	return st
}

// scrape fetches http://addr/metrics.
func scrape(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	return parseExposition(t, string(body))
}

// TestServerMetrics runs a real server with the metrics observer on
// 127.0.0.1, drives loads, commits (O, I and E), invalidations and a
// protocol error, scrapes /metrics over HTTP and checks the figures and the
// log lines.
func TestServerMetrics(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) { testServerMetrics(t, backend) })
	}
}

func testServerMetrics(t *testing.T, backend string) {
	rig := startMetricsRig(t, backend)
	var sent, received int64
	c1 := dialRaw(t, rig.addr, &sent, &received)
	c2 := dialRaw(t, rig.addr, &sent, &received)
	c1.sync()
	c2.sync()
	driveCommits(t, c1, c2)
	checkFirstScrape(t, backend, rig.maddr, sent, received)
	c3 := protocolError(t, rig)
	rig.stop()
	v := scrape(t, rig.maddr) // the endpoint outlives the server
	checkValues(t, v, map[string]float64{`durusbdb_connections`: 0})
	checkConnLogs(t, rig.logs.String(), c1, c2, c3)
}

// metricsRig is a server with the metrics observer and endpoint on
// 127.0.0.1, over an engine of one backend.
type metricsRig struct {
	logs        *testlog.Buffer
	addr, maddr string // the server's and the metrics endpoint's
	stop        func() // stops the server (once); the endpoint stays
}

// startMetricsRig starts a metricsRig, closed at the end of the test.
func startMetricsRig(t *testing.T, backend string) *metricsRig {
	t.Helper()
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	relay := &server.RemoveRelay{}
	db, err := engine.Open(context.Background(), t.TempDir(), engine.Options{Create: true, Backend: backend,
		Logger: log, OnRemove: relay.OnRemove, GC: engine.GCPolicy{Mode: engine.GCManual}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	m := New(Options{})
	if err := m.RegisterEngine(db, log); err != nil {
		t.Fatal(err)
	}
	ep, err := m.Listen("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close(context.Background()) })
	maddr := ep.Addr().String()

	srv := server.New(server.Config{Logger: log, Observer: m}, server.Engine(db))
	relay.Attach(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		srv.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("server did not stop")
		}
	}
	t.Cleanup(stop)
	return &metricsRig{logs: logs, addr: addr, maddr: maddr, stop: stop}
}

// driveCommits makes the traffic testServerMetrics counts: commits O, O,
// I and E by c1, syncs and loads (O, K, I) by c2.
func driveCommits(t *testing.T, c1, c2 *rawClient) {
	t.Helper()
	// Commit 1 (O): root 0 -> 1.
	oids := c1.newOIDs(2)
	if oids[0] != 0 || oids[1] != 1 {
		t.Fatalf("oids %v, want [0 1]", oids)
	}
	if _, st := c1.commit(rec(0, "root", 1), rec(1, "child")); st != 'O' {
		t.Fatalf("first commit: %q", st)
	}
	// c2 learns that 0 and 1 changed, then loads them (O) and 77 (K).
	if inv := c2.sync(); len(inv) != 2 {
		t.Fatalf("sync after the first commit: %v, want [0 1]", inv)
	}
	for oid, want := range map[uint64]byte{0: 'O', 1: 'O', 77: 'K'} {
		if st := c2.load(oid); st != want {
			t.Fatalf("load %d: %q, want %q", oid, st, want)
		}
	}
	// Commit 2 (O) rewrites 1: invalidates it for c2 (queued once).
	if _, st := c1.commit(rec(1, "child v2")); st != 'O' {
		t.Fatalf("second commit: %q", st)
	}
	if st := c2.load(1); st != 'I' { // invalid until synced
		t.Fatalf("load of an invalidated oid: %q, want I", st)
	}
	if inv := c2.sync(); len(inv) != 1 || inv[0] != 1 {
		t.Fatalf("sync: %v, want [1]", inv)
	}
	// Commit 3 (I, rule 10): a reference to an oid without a record.
	n := c1.newOIDs(1)[0]
	if _, st := c1.commit(rec(n, "dangling", 999)); st != 'I' {
		t.Fatalf("dangling commit: %q, want I", st)
	}
	// Commit 4 (E, rule 6): an oid never handed out.
	if _, st := c1.commit(rec(5000, "unallocated")); st != 'E' {
		t.Fatalf("unallocated commit: %q, want E", st)
	}
}

// checkFirstScrape checks the figures after driveCommits.
func checkFirstScrape(t *testing.T, backend, maddr string, sent, received int64) {
	t.Helper()
	var v map[string]float64
	proc.WaitFor(5*time.Second, func() bool {
		v = scrape(t, maddr)
		return v["durusbdb_sent_bytes_total"] == float64(received)
	})
	want := map[string]float64{
		`durusbdb_commits_total{status="O"}`:                      2,
		`durusbdb_commits_total{status="I"}`:                      1,
		`durusbdb_commits_total{status="E"}`:                      1,
		`durusbdb_commit_refusals_total{rule="10"}`:               1,
		`durusbdb_commit_refusals_total{rule="6"}`:                1,
		`durusbdb_commit_refusals_total{rule="3"}`:                0,
		`durusbdb_commit_records_total`:                           3,
		`durusbdb_commit_duration_seconds_count{stage="total"}`:   2,
		`durusbdb_commit_duration_seconds_count{stage="durable"}`: 2,
		`durusbdb_loads_total{status="O"}`:                        2,
		`durusbdb_loads_total{status="K"}`:                        1,
		`durusbdb_loads_total{status="I"}`:                        1,
		`durusbdb_loads_total{status="E"}`:                        0,
		`durusbdb_requests_total{command="C"}`:                    4,
		`durusbdb_requests_total{command="L"}`:                    4,
		`durusbdb_requests_total{command="S"}`:                    4,
		`durusbdb_requests_total{command="M"}`:                    2,
		`durusbdb_connections`:                                    2,
		`durusbdb_connections_opened_total`:                       2,
		`durusbdb_invalidations_sent_total`:                       3,
		`durusbdb_errors_total{kind="protocol"}`:                  0,
		`durusbdb_received_bytes_total`:                           float64(sent),
		`durusbdb_sent_bytes_total`:                               float64(received),
		// Engine figures, read at the scrape.
		`durusbdb_objects`:                2,
		`durusbdb_engine_commits_total`:   2,
		`durusbdb_unclean_shutdown`:       0,
		`durusbdb_stats_errors_total`:     0,
		`durusbdb_gc_queue_length`:        0,
		`durusbdb_gc_freed_objects_total`: 0,
	}
	checkValues(t, v, want)
	// Commit 1 made 0 and 1 invalid for c2 (2 oids, 1 connection), commit 2
	// oid 1 again; commit 3's refusal (rule 10) is decided when it is
	// staged, before anything is announced, so it invalidates nothing:
	// 3 queued entries.
	if got := v["durusbdb_invalidations_queued_total"]; got != 3 {
		t.Errorf("durusbdb_invalidations_queued_total = %v, want 3", got)
	}
	if v["durusbdb_group_flushes_total"] < 1 {
		t.Errorf("durusbdb_group_flushes_total = %v, want >= 1", v["durusbdb_group_flushes_total"])
	}
	if v["durusbdb_group_flush_seconds_total"] <= 0 {
		t.Errorf("durusbdb_group_flush_seconds_total = %v, want > 0 after a durable commit", v["durusbdb_group_flush_seconds_total"])
	}
	if v["durusbdb_commit_duration_seconds_sum{stage=\"total\"}"] <= 0 {
		t.Errorf("commit latency sum not positive")
	}
	if _, ok := v["go_goroutines"]; !ok {
		t.Errorf("Go runtime metrics missing")
	}
	if _, ok := v["process_cpu_seconds_total"]; !ok {
		t.Errorf("process metrics missing")
	}
	checkBackendMetrics(t, backend, v)
}

// protocolError sends an unknown command byte on a new connection and
// checks it is counted; it returns that client.
func protocolError(t *testing.T, rig *metricsRig) *rawClient {
	t.Helper()
	// A protocol error: an unknown command byte closes the connection; the
	// error is counted and its log line names the client.
	var s3, r3 int64
	c3 := dialRaw(t, rig.addr, &s3, &r3)
	if _, err := c3.nc.Write([]byte{'Z'}); err != nil {
		t.Fatal(err)
	}
	c3.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c3.nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after an unknown command: %v, want EOF", err)
	}
	var v map[string]float64
	if !proc.WaitFor(10*time.Second, func() bool {
		v = scrape(t, rig.maddr)
		return v["durusbdb_connections"] == 2 && v[`durusbdb_connections_closed_total{reason="unknown command"}`] == 1
	}) {
		t.Fatalf("connection close not counted: connections %v", v["durusbdb_connections"])
	}
	checkValues(t, v, map[string]float64{
		`durusbdb_errors_total{kind="protocol"}`:   1,
		`durusbdb_connections_opened_total`:        3,
		`durusbdb_requests_total{command="other"}`: 1,
	})
	return c3
}

// checkConnLogs checks that every connection's open and close lines, the
// protocol error (c3) and the refusals (c1) name the client.
func checkConnLogs(t *testing.T, text string, c1, c2, c3 *rawClient) {
	t.Helper()
	c3addr := c3.nc.LocalAddr().String()
	// Log lines: every connection open and close, and the error, name the
	// client address.
	for _, c := range []*rawClient{c1, c2, c3} {
		remote := "remote=" + c.nc.LocalAddr().String()
		for _, msg := range []string{`msg="connection opened"`, `msg="connection closed"`} {
			if !logHas(text, msg, remote) {
				t.Errorf("no %s line with %s in the log", msg, remote)
			}
		}
	}
	if !logHas(text, "unknown command byte", "remote="+c3addr) {
		t.Errorf("the unknown command error line does not name %s", c3addr)
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "commit refused") && !strings.Contains(line, "remote="+c1.nc.LocalAddr().String()) {
			t.Errorf("commit refusal line without the client address: %s", line)
		}
	}
}

// logHas reports whether a log line contains every one of parts.
func logHas(text string, parts ...string) bool {
outer:
	for _, line := range strings.Split(text, "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue outer
			}
		}
		return true
	}
	return false
}

func checkValues(t *testing.T, v map[string]float64, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		got, ok := v[name]
		if !ok {
			t.Errorf("%s missing from the scrape", name)
		} else if got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}
