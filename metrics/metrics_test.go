package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/server"
)

func TestObserverCounters(t *testing.T) {
	m := New(Options{NoRuntime: true})
	m.ConnOpened("127.0.0.1:1")
	m.ConnOpened("127.0.0.1:2")
	m.ConnClosed("127.0.0.1:1", "disconnected")
	for _, cmd := range []byte("LLLBCSZ\x00") {
		m.Request(cmd)
	}
	for _, st := range []byte("OOOKIEX") { // X: not a load status, ignored
		m.Load(st)
	}
	m.Commit(server.CommitResult{Status: 'O', Records: 3, Bytes: 120, TokenWait: time.Millisecond,
		Apply: 2 * time.Millisecond, Durable: 3 * time.Millisecond, Total: 7 * time.Millisecond})
	m.Commit(server.CommitResult{Status: 'I', Rule: 10, Records: 1, Bytes: 40})
	m.Commit(server.CommitResult{Status: 'E', Rule: 6, Records: 1, Bytes: 40})
	m.Commit(server.CommitResult{Status: 'E', Rule: 99}) // unknown rule: counted by status only
	m.Invalidated(3, 2)
	m.InvalidSent(4)
	m.BytesRead(100)
	m.BytesRead(5)
	m.BytesWritten(7)
	m.Error(server.ErrTimeout)
	m.Error(server.ErrTimeout)
	m.Error(server.ErrPanic)
	m.Error(server.NumErrorKinds + 3) // out of range: ignored

	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"connections", testutil.ToFloat64(m.connections), 1},
		{"opened", testutil.ToFloat64(m.connOpened), 2},
		{"closed disconnected", testutil.ToFloat64(m.connClosed.WithLabelValues("disconnected")), 1},
		{"requests L", testutil.ToFloat64(m.requests['L']), 3},
		{"requests B", testutil.ToFloat64(m.requests['B']), 1},
		{"requests other", testutil.ToFloat64(m.requests['Z']), 2},
		{"loads O", testutil.ToFloat64(m.loads['O']), 3},
		{"loads K", testutil.ToFloat64(m.loads['K']), 1},
		{"loads I", testutil.ToFloat64(m.loads['I']), 1},
		{"loads E", testutil.ToFloat64(m.loads['E']), 1},
		{"commits O", testutil.ToFloat64(m.commits['O']), 1},
		{"commits I", testutil.ToFloat64(m.commits['I']), 1},
		{"commits E", testutil.ToFloat64(m.commits['E']), 2},
		{"refusals 10", testutil.ToFloat64(m.refusals[10]), 1},
		{"refusals 6", testutil.ToFloat64(m.refusals[6]), 1},
		{"commit records", testutil.ToFloat64(m.commitRecords), 3},
		{"commit bytes", testutil.ToFloat64(m.commitBytes), 120},
		{"invalid queued", testutil.ToFloat64(m.invalidQueued), 6},
		{"invalid sent", testutil.ToFloat64(m.invalidSent), 4},
		{"received", testutil.ToFloat64(m.bytesReceived), 105},
		{"sent", testutil.ToFloat64(m.bytesSent), 7},
		{"errors timeout", testutil.ToFloat64(m.errors[server.ErrTimeout]), 2},
		{"errors panic", testutil.ToFloat64(m.errors[server.ErrPanic]), 1},
		{"errors io", testutil.ToFloat64(m.errors[server.ErrIO]), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Every label value exists from the start (a scrape shows zeros), so
	// each vector has exactly its pre-resolved series.
	for name, want := range map[string]int{
		"durusbdb_requests_total":           len(commands) + 1,
		"durusbdb_loads_total":              len(loadStatuses),
		"durusbdb_commits_total":            3,
		"durusbdb_commit_refusals_total":    maxRule,
		"durusbdb_errors_total":             int(server.NumErrorKinds),
		"durusbdb_commit_duration_seconds":  numStages,
		"durusbdb_connections_closed_total": 1,
	} {
		if got, err := testutil.GatherAndCount(m.Registry(), name); err != nil || got != want {
			t.Errorf("%s: %d series (err %v), want %d", name, got, err, want)
		}
	}

	// The histogram holds the O commit only, in seconds.
	const want = `
# HELP durusbdb_commit_duration_seconds Latency of commits answered O by stage: token_wait (C to token), apply (data received to applied and invalidated), durable (group commit wait), total (C to reply, including the client sending the data).
# TYPE durusbdb_commit_duration_seconds histogram
durusbdb_commit_duration_seconds_bucket{stage="apply",le="0.005"} 1
durusbdb_commit_duration_seconds_bucket{stage="apply",le="+Inf"} 1
durusbdb_commit_duration_seconds_sum{stage="apply"} 0.001
durusbdb_commit_duration_seconds_count{stage="apply"} 1
durusbdb_commit_duration_seconds_bucket{stage="durable",le="0.005"} 1
durusbdb_commit_duration_seconds_bucket{stage="durable",le="+Inf"} 1
durusbdb_commit_duration_seconds_sum{stage="durable"} 0.003
durusbdb_commit_duration_seconds_count{stage="durable"} 1
durusbdb_commit_duration_seconds_bucket{stage="token_wait",le="0.005"} 0
durusbdb_commit_duration_seconds_bucket{stage="token_wait",le="+Inf"} 1
durusbdb_commit_duration_seconds_sum{stage="token_wait"} 0.01
durusbdb_commit_duration_seconds_count{stage="token_wait"} 1
durusbdb_commit_duration_seconds_bucket{stage="total",le="0.005"} 0
durusbdb_commit_duration_seconds_bucket{stage="total",le="+Inf"} 1
durusbdb_commit_duration_seconds_sum{stage="total"} 0.02
durusbdb_commit_duration_seconds_count{stage="total"} 1
`
	m2 := New(Options{NoRuntime: true, CommitBuckets: []float64{0.005}})
	m2.Commit(server.CommitResult{Status: 'O', TokenWait: 10 * time.Millisecond, Apply: time.Millisecond,
		Durable: 3 * time.Millisecond, Total: 20 * time.Millisecond})
	m2.Commit(server.CommitResult{Status: 'E', Rule: 3, Total: time.Second}) // not in the histogram
	if err := testutil.GatherAndCompare(m2.Registry(), strings.NewReader(want), "durusbdb_commit_duration_seconds"); err != nil {
		t.Error(err)
	}
}

// TestObserverNoAllocs: the load path (request, load status, bytes) must not
// allocate.
func TestObserverNoAllocs(t *testing.T) {
	m := New(Options{NoRuntime: true})
	var o server.Observer = m
	allocs := testing.AllocsPerRun(1000, func() {
		o.Request('L')
		o.Load('O')
		o.BytesRead(13)
		o.BytesWritten(120)
		o.Request('B')
		o.Load('K')
	})
	if allocs != 0 {
		t.Errorf("%v allocations per load, want 0", allocs)
	}
}

// fakeStats is a StatsSource.
type fakeStats struct {
	st  engine.Stats
	err error
}

func (f *fakeStats) Stats() (engine.Stats, error) { return f.st, f.err }

func TestEngineCollector(t *testing.T) {
	f := &fakeStats{st: engine.Stats{Backend: "leveldb", Access: "btree", Objects: 42, NextOID: 1024, GCQueue: 7,
		GCCollections: 3, GCFreed: 99, FullCollecting: true, Commits: 11, CommittedBytes: 5000, Flushes: 4, FlushTime: 1500 * time.Millisecond,
		RecordCacheHits: 80, RecordCacheMiss: 20, RecordCacheBytes: 4096,
		UncleanShutdown: true, Durability: "sync", LastCheckpoint: time.Unix(1700000000, 500_000_000), CheckpointsSince: 2}}
	c := NewEngineCollector(f, "1.2.3", slog.New(slog.NewTextHandler(io.Discard, nil)))
	const want = `
# HELP durusbdb_objects Records stored (meta size).
# TYPE durusbdb_objects gauge
durusbdb_objects 42
# HELP durusbdb_gc_queue_length Garbage candidates queued for the reference-count collector.
# TYPE durusbdb_gc_queue_length gauge
durusbdb_gc_queue_length 7
# HELP durusbdb_gc_freed_objects_total Objects freed by the collector and full collections (kept in the database).
# TYPE durusbdb_gc_freed_objects_total counter
durusbdb_gc_freed_objects_total 99
# HELP durusbdb_group_flushes_total Group-commit log flushes since open (one covers many commits).
# TYPE durusbdb_group_flushes_total counter
durusbdb_group_flushes_total 4
# HELP durusbdb_group_flush_seconds_total Time the group-commit flushes spent writing and syncing the log since open (÷ flushes: the fsync latency under load).
# TYPE durusbdb_group_flush_seconds_total counter
durusbdb_group_flush_seconds_total 1.5
# HELP durusbdb_checkpoints_total Checkpoints run since open.
# TYPE durusbdb_checkpoints_total counter
durusbdb_checkpoints_total 2
# HELP durusbdb_last_checkpoint_timestamp_seconds Unix time of the last checkpoint (absent before the first one).
# TYPE durusbdb_last_checkpoint_timestamp_seconds gauge
durusbdb_last_checkpoint_timestamp_seconds 1.7000000005e+09
# HELP durusbdb_unclean_shutdown 1 if the database was not closed cleanly before this open.
# TYPE durusbdb_unclean_shutdown gauge
durusbdb_unclean_shutdown 1
# HELP durusbdb_info durusbdb's release and database facts, value 1.
# TYPE durusbdb_info gauge
durusbdb_info{access="btree",backend="leveldb",durability="sync",readonly="false",version="1.2.3"} 1
# HELP durusbdb_stats_errors_total Scrapes whose engine Stats call failed.
# TYPE durusbdb_stats_errors_total counter
durusbdb_stats_errors_total 0
# HELP durusbdb_record_cache_hits_total Loads answered by the engine's record cache since open.
# TYPE durusbdb_record_cache_hits_total counter
durusbdb_record_cache_hits_total 80
# HELP durusbdb_record_cache_misses_total Loads that read the store (record cache misses) since open.
# TYPE durusbdb_record_cache_misses_total counter
durusbdb_record_cache_misses_total 20
# HELP durusbdb_record_cache_bytes Record cache size: records plus bookkeeping, bytes.
# TYPE durusbdb_record_cache_bytes gauge
durusbdb_record_cache_bytes 4096
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "durusbdb_objects", "durusbdb_gc_queue_length",
		"durusbdb_gc_freed_objects_total", "durusbdb_group_flushes_total", "durusbdb_group_flush_seconds_total", "durusbdb_checkpoints_total",
		"durusbdb_last_checkpoint_timestamp_seconds", "durusbdb_unclean_shutdown", "durusbdb_info",
		"durusbdb_stats_errors_total", "durusbdb_record_cache_hits_total", "durusbdb_record_cache_misses_total",
		"durusbdb_record_cache_bytes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c); n != 18 {
		t.Errorf("collected %d metrics, want 18", n)
	}

	// A failing Stats: only the error counter, which counts.
	f.err = errors.New("closed")
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("failing stats: collected %d metrics, want 1", n)
	}
	if v := testutil.ToFloat64(c); v != 2 { // second failure: CollectAndCount collected once, ToFloat64 once more
		t.Errorf("stats_errors_total = %v, want 2", v)
	}
}

// TestRegisterEngine registers a real database's collectors on every
// compiled backend and checks the figures follow a commit.
func TestRegisterEngine(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			db, err := engine.Open(context.Background(), t.TempDir(), engine.Options{Create: true, Backend: backend,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			m := New(Options{NoRuntime: true, Version: "9.8.7"})
			if err := m.RegisterEngine(db, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := db.AllocOIDs(2); err != nil {
				t.Fatal(err)
			}
			p, err := db.Stage(context.Background(), [][]byte{rec(0, "root", 1), rec(1, "child")})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			v := gatherValues(t, m)
			for name, want := range map[string]float64{
				"durusbdb_objects":              2,
				"durusbdb_engine_commits_total": 1,
				"durusbdb_unclean_shutdown":     0,
				"durusbdb_stats_errors_total":   0,
				`durusbdb_info{access="btree",backend="` + backend + `",durability="sync",readonly="false",version="9.8.7"}`: 1,
			} {
				if got, ok := v[name]; !ok || got != want {
					t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
				}
			}
			if v["durusbdb_group_flushes_total"] < 1 {
				t.Errorf("durusbdb_group_flushes_total = %v, want >= 1", v["durusbdb_group_flushes_total"])
			}
			checkBackendMetrics(t, backend, v)

			// After Close the scrape still works; the engine's figures are
			// replaced by the error counter.
			db.Close()
			v = gatherValues(t, m)
			if v["durusbdb_stats_errors_total"] != 1 {
				t.Errorf("after close: durusbdb_stats_errors_total = %v, want 1", v["durusbdb_stats_errors_total"])
			}
			if _, ok := v["durusbdb_objects"]; ok {
				t.Errorf("after close: durusbdb_objects still reported")
			}
		})
	}
}
