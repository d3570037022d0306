package service

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/wire"
	"github.com/durusbdb/durusbdb/server"
)

// startServe runs Serve on dir at 127.0.0.1:0 and returns the address, a
// stop function and the channel of Serve's result.
func startServe(t *testing.T, cfg Config) (string, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ready := make(chan net.Addr, 1)
	cfg.Listen = server.ListenConfig{Host: "127.0.0.1", Port: 0, IgnoreSystemd: true}
	cfg.Ready = func(a net.Addr) { ready <- a }
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg) }()
	select {
	case a := <-ready:
		return a.String(), cancel, done
	case err := <-done:
		t.Fatalf("Serve returned before serving: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("Serve did not start serving")
	}
	return "", nil, nil
}

// TestServeInProcess creates a database in a missing directory, commits
// and loads through the protocol, stops the server by cancelling the
// context and finds the commit in the reopened database.
func TestServeInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "db")
	logs := &testlog.Buffer{}
	addr, stop, done := startServe(t, Config{Dir: dir, Engine: engine.Options{Create: true}, Version: "test",
		Log: LogConfig{Stderr: logs}})
	c, err := wire.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if oids, err := c.NewOIDs(2); err != nil || oids[0] != 0 || oids[1] != 1 {
		t.Fatalf("new oids: %v %v", oids, err)
	}
	recs := [][]byte{record.Build(0, []byte("root"), 1), record.Build(1, []byte("one"))}
	if _, st, err := c.Commit(recs); err != nil || st != wire.StatusOK {
		t.Fatalf("commit: status %c, %v", st, err)
	}
	if st, rec, err := c.Load(1); err != nil || st != wire.StatusOK || !bytes.Equal(rec, recs[1]) {
		t.Fatalf("load 1: status %c, %q, %v", st, rec, err)
	}
	c.Close()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
	if !strings.Contains(logs.String(), "database closed") {
		t.Errorf("no clean close in the log:\n%s", logs)
	}
	db, err := engine.Open(context.Background(), dir, engine.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("reopen after a clean shutdown: %v", err)
	}
	defer db.Close()
	got, err := db.Load(1)
	if err != nil || !bytes.Equal(got, recs[1]) {
		t.Fatalf("oid 1 after restart: %q, %v", got, err)
	}
}

// TestServeConfigErrors: a bad Config is a *ConfigError, before anything
// is opened.
func TestServeConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dir: t.TempDir(), Listen: server.ListenConfig{Port: 70000}},
		{Dir: t.TempDir(), Log: LogConfig{Format: "xml"}},
	} {
		err := Serve(context.Background(), cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("Serve(%+v) = %v, want a *ConfigError", cfg, err)
		}
	}
}
