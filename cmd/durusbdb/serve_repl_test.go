package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/spf13/pflag"
)

// TestServeReplRefusals: each replication flag rule is a usage error
// (exit 2) naming the flag, before any database is opened.
func TestServeReplRefusals(t *testing.T) {
	ldb := t.TempDir()
	db, err := engine.Open(context.Background(), ldb, engine.Options{Create: true, Backend: "leveldb",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	group := []string{"--repl-listen", "127.0.0.1:3001", "--repl-peer", "127.0.0.1:3002", "--repl-peer", "127.0.0.1:3003"}
	cases := []struct {
		name string
		args []string
		msg  []string
	}{
		{"peer without listen", []string{"--repl-peer", "127.0.0.1:3002"}, []string{"--repl-peer needs --repl-listen"}},
		{"init without listen", []string{"--repl-init"}, []string{"--repl-init needs --repl-listen"}},
		{"hook without listen", []string{"--on-role-change", "true"}, []string{"--on-role-change needs --repl-listen"}},
		{"flush flag without listen", []string{"--repl-flush-during-acks=false"}, []string{"--repl-flush-during-acks needs --repl-listen"}},
		{"two sites", []string{"--repl-listen", "127.0.0.1:3001", "--repl-peer", "127.0.0.1:3002"}, []string{"3 or more electable sites", "name 2", "--repl-allow-two-sites"}},
		{"one site", []string{"--repl-listen", "127.0.0.1:3001", "--repl-init"}, []string{"3 or more electable sites", "name 1"}},
		{"a peer twice", []string{"--repl-listen", "127.0.0.1:3001", "--repl-peer", "127.0.0.1:3002", "--repl-peer", "127.0.0.1:3002"}, []string{"name 2"}},
		{"priority 0 is not electable", append(slices.Clone(group), "--repl-priority", "0"), []string{"name 2"}},
		{"negative priority", append(slices.Clone(group), "--repl-priority", "-1"), []string{"--repl-priority"}},
		{"listen not host:port", []string{"--repl-listen", "nowhere", "--repl-peer", "a:1", "--repl-peer", "b:1"}, []string{"--repl-listen", "HOST:PORT"}},
		{"peer port out of range", []string{"--repl-listen", "a:1", "--repl-peer", "b:70000", "--repl-peer", "c:1"}, []string{"--repl-peer", "1 to 65535"}},
		{"peer is self", []string{"--repl-listen", "a:1", "--repl-peer", "a:1", "--repl-peer", "c:1"}, []string{"--repl-peer a:1 is this site's own"}},
		{"ack timeout", append(slices.Clone(group), "--repl-ack-timeout", "0s"), []string{"--repl-ack-timeout"}},
		{"heartbeat 0", append(slices.Clone(group), "--repl-heartbeat", "0s"), []string{"--repl-heartbeat"}},
		{"leveldb directory", append([]string{"--dir", ldb}, group...), []string{"Berkeley DB", "is LevelDB", "durusbdb copy --backend bdb"}},
		{"new leveldb database", append([]string{"--create", "--backend", "leveldb"}, group...), []string{"Berkeley DB", "durusbdb copy --backend bdb"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"serve", "--port", "0"}, c.args...)
			if !slices.Contains(args, "--dir") {
				args = append(args, "--dir", t.TempDir())
			}
			code, _, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d (usage): %s", code, exitUsage, stderr)
			}
			for _, m := range c.msg {
				if !strings.Contains(stderr, m) {
					t.Errorf("stderr %q lacks %q", stderr, m)
				}
			}
		})
	}
}

// parseServe parses serve flags and maps them as the command does.
func parseServe(t *testing.T, args ...string) (serveFlags, map[string]bool) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var f serveFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(fl *pflag.Flag) { set[fl.Name] = true })
	return f, set
}

// TestServeReplConfig: the accepted flags map to service.Config's
// Replication and RoleHook; no --repl-listen means standalone.
func TestServeReplConfig(t *testing.T) {
	f, set := parseServe(t, "--dir", "d", "--host", "10.0.0.1", "--port", "2972",
		"--repl-listen", "10.0.0.1:2973", "--repl-peer", "10.0.0.2:2973", "--repl-peer", "10.0.0.3:2973", "--repl-init",
		"--repl-priority", "50", "--repl-ack-timeout", "2s", "--repl-heartbeat", "-1s", "--on-role-change", "/usr/local/bin/move-ip")
	cfg, err := f.config(set)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Replication
	if r == nil || r.Listen != "10.0.0.1:2973" || !slices.Equal(r.Peers, []string{"10.0.0.2:2973", "10.0.0.3:2973"}) || !r.Init ||
		r.Priority != 50 || r.AckTimeout != 2*time.Second || r.HeartbeatMonitor != -time.Second || r.AllowTwoSites || r.DurusAddr != "" || r.SerialFlush {
		t.Errorf("Replication %+v", r)
	}
	if cfg.RoleHook.Command != "/usr/local/bin/move-ip" || cfg.RoleHook.Timeout <= 0 {
		t.Errorf("RoleHook %+v", cfg.RoleHook)
	}

	f, set = parseServe(t, "--dir", "d", "--repl-listen", "h1:2973", "--repl-peer", "h2:2973",
		"--repl-allow-two-sites", "--repl-durus-addr", "db1.example:2972", "--repl-flush-during-acks=false")
	if cfg, err = f.config(set); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Replication; r == nil || !r.AllowTwoSites || r.DurusAddr != "db1.example:2972" || !r.SerialFlush || r.Priority != defaultReplPriority ||
		r.AckTimeout != defaultReplAckTimeout || r.HeartbeatMonitor != defaultReplHeartbeat {
		t.Errorf("two sites accepted: %+v", r)
	}

	f, set = parseServe(t, "--dir", "d", "--repl-listen", "h1:1", "--repl-peer", "h2:1", "--repl-peer", "h3:1", "--repl-peer", "h4:1", "--repl-priority", "0")
	if cfg, err = f.config(set); err != nil || cfg.Replication == nil || cfg.Replication.Priority >= 0 {
		t.Errorf("--repl-priority 0 (never master) with three peers: %+v, %v", cfg.Replication, err)
	}

	f, set = parseServe(t, "--dir", "d")
	if cfg, err = f.config(set); err != nil || cfg.Replication != nil {
		t.Errorf("standalone: %+v, %v", cfg.Replication, err)
	}
}
