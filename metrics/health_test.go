package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testlog"
)

// probe GETs http://addr+path and returns the status code and body.
func probe(t testing.TB, addr, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// fakeStore is a ProbeStore whose Load blocks until release is closed (if
// not nil) and then returns err.
type fakeStore struct {
	dir      string
	readOnly bool
	err      error
	release  chan struct{}
}

func (f *fakeStore) Load(oid uint64) ([]byte, error) {
	if f.release != nil {
		<-f.release
	}
	return nil, f.err
}
func (f *fakeStore) ReadOnly() bool { return f.readOnly }
func (f *fakeStore) Dir() string    { return f.dir }

// TestProbes serves /healthz and /readyz over HTTP with a real database of
// every backend and checks each reason for a 503, and that no probe writes
// a log line.
func TestProbes(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) { testProbes(t, backend) })
	}
}

func testProbes(t *testing.T, backend string) {
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := New(Options{NoRuntime: true})
	ep, err := m.Listen("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close(context.Background())
	addr := ep.Addr().String()

	// Before the database is open: both fail.
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := probe(t, addr, path); code != http.StatusServiceUnavailable || !strings.Contains(body, "not open yet") {
			t.Errorf("%s before open: %d %q", path, code, body)
		}
	}

	dir := t.TempDir()
	db, err := engine.Open(context.Background(), dir, engine.Options{Create: true, Backend: backend,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stopping := make(chan struct{})
	m.SetProbes(Probes{Store: db, MinFreeSpace: 1, Stopping: stopping})
	before := logs.String()

	// An empty database: oid 0 is not found, which is an answer.
	for _, path := range []string{"/healthz", "/readyz"} {
		for range 20 {
			if code, body := probe(t, addr, path); code != http.StatusOK || body != "ok\n" {
				t.Fatalf("%s on an empty database: %d %q", path, code, body)
			}
		}
	}
	if _, err := db.AllocOIDs(1); err != nil {
		t.Fatal(err)
	}
	p, err := db.Stage(context.Background(), [][]byte{rec(0, "root")})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := probe(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with a root: %d", code)
	}
	if after := logs.String(); after != before {
		t.Errorf("probes wrote log lines:\n%s", strings.TrimPrefix(after, before))
	}

	checkNotReady(t, m, addr, db, dir, stopping)

	// A closed database fails both.
	m.SetProbes(Probes{Store: db})
	db.Close()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := probe(t, addr, path); code != http.StatusServiceUnavailable || !strings.Contains(body, "load of oid 0") {
			t.Errorf("%s on a closed database: %d %q", path, code, body)
		}
	}
}

// checkNotReady checks the states that are alive but not ready: free
// space below the reserve, shutting down (closes stopping), read-only.
func checkNotReady(t *testing.T, m *Metrics, addr string, db *engine.DB, dir string, stopping chan struct{}) {
	t.Helper()
	// Free space below the reserve: not ready, still alive; the reason
	// names the flag, and the reserve is exported.
	m.SetProbes(Probes{Store: db, MinFreeSpace: 1 << 62})
	if code, body := probe(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "--min-free-space") {
		t.Errorf("/readyz below the reserve: %d %q", code, body)
	}
	if code, _ := probe(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz below the reserve: %d, want 200", code)
	}
	v := gatherValues(t, m)
	if v["durusbdb_min_free_space_bytes"] != 1<<62 {
		t.Errorf("durusbdb_min_free_space_bytes = %v", v["durusbdb_min_free_space_bytes"])
	}

	// Shutting down: not ready.
	m.SetProbes(Probes{Store: db, Stopping: stopping})
	close(stopping)
	if code, body := probe(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while stopping: %d %q", code, body)
	}

	// Read-only: not ready, alive.
	m.SetProbes(Probes{Store: &fakeStore{dir: dir, readOnly: true, err: engine.ErrNotFound}})
	if code, body := probe(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "read-only") {
		t.Errorf("/readyz read-only: %d %q", code, body)
	}
	if code, _ := probe(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz read-only: %d, want 200", code)
	}
}

// TestLiveTimeout: a storage that does not answer fails /healthz within
// the probe timeout, and while that load hangs later probes fail at once
// instead of piling up loads.
func TestLiveTimeout(t *testing.T) {
	fs := &fakeStore{dir: t.TempDir(), release: make(chan struct{})}
	m := New(Options{NoRuntime: true})
	m.SetProbes(Probes{Store: fs, Timeout: 50 * time.Millisecond})
	start := time.Now()
	err := m.Live(context.Background())
	if err == nil || !errors.Is(err, ErrProbe) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("hanging load: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("hanging load reported after %v", d)
	}
	if err := m.Live(context.Background()); err == nil || !strings.Contains(err.Error(), "has not returned") {
		t.Fatalf("second probe while the first load hangs: %v", err)
	}
	close(fs.release)
	// Once the load returns the slot is free again.
	if !proc.WaitFor(10*time.Second, func() bool { err = m.Live(context.Background()); return err == nil }) {
		t.Fatalf("probe still failing after the load returned: %v", err)
	}
	// A storage error that is not "not found" fails it.
	m.SetProbes(Probes{Store: &fakeStore{dir: fs.dir, err: errors.New("disk on fire")}})
	if err := m.Live(context.Background()); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("failing load: %v", err)
	}
}

// TestFileSystemGauges: RegisterEngine exports the free space of the
// database's file system.
func TestFileSystemGauges(t *testing.T) {
	dir := t.TempDir()
	db, err := engine.Open(context.Background(), dir, engine.Options{Create: true, Backend: "leveldb",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m := New(Options{NoRuntime: true, Version: "1.0.0"})
	if err := m.RegisterEngine(db, nil); err != nil {
		t.Fatal(err)
	}
	fs, err := FreeSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	v := gatherValues(t, m)
	free, size := v["durusbdb_filesystem_free_bytes"], v["durusbdb_filesystem_size_bytes"]
	if free <= 0 || size < free || size != float64(fs.Size) {
		t.Errorf("durusbdb_filesystem_free_bytes %v, _size_bytes %v (statfs: %+v)", free, size, fs)
	}
	found := false
	for k := range v {
		if strings.HasPrefix(k, "durusbdb_info{") && strings.Contains(k, `version="1.0.0"`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no durusbdb_info with version=\"1.0.0\"")
	}
}

// TestReadinessFileSystem: readiness refuses as the engine's guard does:
// a read-only file system, free bytes below the reserve, fewer free
// inodes than engine.MinFreeInodes (df -i); inodes not reported (btrfs)
// and a guard turned off (reserve 0) pass.
func TestReadinessFileSystem(t *testing.T) {
	for _, c := range []struct {
		fs      FileSystem
		reserve int64
		want    string // "" passes
	}{
		{FileSystem{Free: 1 << 30, FreeInodes: 1000}, 64 << 20, ""},
		{FileSystem{Free: 1 << 30, FreeInodes: -1}, 64 << 20, ""},
		{FileSystem{Free: 1 << 20, FreeInodes: 1000}, 64 << 20, "--min-free-space"},
		{FileSystem{Free: 1 << 30, FreeInodes: engine.MinFreeInodes - 1}, 64 << 20, "df -i"},
		{FileSystem{Free: 1 << 30, FreeInodes: 0}, 0, ""},
		{FileSystem{Free: 1 << 30, FreeInodes: 1000, ReadOnly: true}, 64 << 20, "read-only"},
	} {
		err := c.fs.admits("/d", c.reserve)
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, ErrProbe) || !strings.Contains(fmt.Sprint(err), c.want)) {
			t.Errorf("%+v, reserve %d: %v; want %q", c.fs, c.reserve, err, c.want)
		}
	}
}
