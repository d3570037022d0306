package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// The tools on a live database, with real processes: a built durusbdb
// serving a directory, and the tools run as separate processes.

// liveBuilder holds the CLI that cliBinary builds, once per test binary.
var liveBuilder proc.Builder

func TestMain(m *testing.M) {
	code := m.Run()
	liveBuilder.Close()
	os.Exit(code)
}

// cliBinary builds this command once per test run (with -tags bdb when
// the test binary has Berkeley DB).
func cliBinary(t *testing.T) string {
	t.Helper()
	tags := ""
	if slices.Contains(backend.Compiled(), backend.BDB) {
		tags = "bdb"
	}
	bin, err := liveBuilder.Build(context.Background(), "github.com/durusbdb/durusbdb/cmd/durusbdb", tags)
	if err != nil {
		t.Fatalf("building the CLI: %v", err)
	}
	return bin
}

// serveProc is a `durusbdb serve` child process on a unix socket.
type serveProc struct {
	*proc.Process
	addr string
}

// startServe starts `durusbdb serve` on dir and waits until it accepts
// Durus clients (at most 60 s).
func startServe(t *testing.T, bin, dir, kind string) *serveProc {
	t.Helper()
	return startServeWait(t, bin, dir, kind, "control socket listening")
}

// startServeWait is startServe waiting for a log line containing want.
func startServeWait(t *testing.T, bin, dir, kind, want string) *serveProc {
	t.Helper()
	addr := filepath.Join(filepath.Dir(dir), "durus.sock")
	p := &serveProc{addr: addr, Process: proc.StartT(t, proc.Options{}, bin, "serve", "--dir", dir, "--create",
		"--backend", kind, "--address", addr, "--gc-grace", "0", "--gc-mode", "manual")}
	// The Durus socket listens before the database is open; the control
	// socket once it is.
	if err := p.WaitReady(addr, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitUntil(60*time.Second, "log line "+strconv.Quote(want), func() bool {
		return strings.Contains(p.Log(), want)
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// quit stops the server with Q and waits for a clean exit.
func (p *serveProc) quit(t *testing.T) {
	t.Helper()
	if err := p.Quit(p.addr, 30*time.Second); err != nil {
		t.Fatalf("server exit after Q: %v\n%s", err, p.LogTail(40))
	}
}

// kill9 kills the server with SIGKILL.
func (p *serveProc) kill9(t *testing.T) {
	t.Helper()
	if err := p.Kill(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// runTool runs the binary and returns its exit code, stdout and stderr.
func runTool(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("%v: %v", args, err)
	return 0, "", ""
}

func mustTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	code, out, errs := runTool(t, bin, args...)
	if code != 0 {
		t.Fatalf("durusbdb %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// shape normalises a tool's output for comparing live and offline runs:
// numbers, durations and the database directory are replaced.
func shape(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "DIR")
	s = regexp.MustCompile(`[0-9]+(\.[0-9]+)?(µs|ms|s|ns|m)?`).ReplaceAllString(s, "N")
	return s
}

// statsLabels returns the labels ("objects", ...) of stats' text output.
func statsLabels(out string) []string {
	var ls []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok {
			ls = append(ls, k)
		}
	}
	return ls
}

func jsonKeys(t *testing.T, out string) (map[string]any, []string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("stats --json: %v\n%s", err, out)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return m, ks
}

// TestToolsOnALiveDatabase runs stats, check, checkpoint, gc, gc --full,
// export and backup while a server serves the directory: each succeeds,
// prints the shape of output it prints offline, and the figures are the
// server's (its commits, its connection).
func TestToolsOnALiveDatabase(t *testing.T) {
	bin := cliBinary(t)
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "db")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := startServe(t, bin, dir, kind)
			sock := filepath.Join(dir, control.SocketName)
			if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
				t.Fatalf("control socket: %v %v, want a socket with mode 0600", fi, err)
			}

			// Three commits by a client that stays connected: 0 -> 1, then
			// 1 again, then 0 without its reference (1 becomes garbage).
			c, err := wire.Dial(p.addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if oids, err := c.NewOIDs(2); err != nil || oids[0] != 0 {
				t.Fatalf("oids %v %v", oids, err)
			}
			for _, recs := range [][][]byte{
				{record.Build(0, []byte("root"), 1), record.Build(1, []byte("one"))},
				{record.Build(1, []byte("one again"))},
				{record.Build(0, []byte("root alone"))},
			} {
				if _, st, err := c.Commit(recs); err != nil || st != wire.StatusOK {
					t.Fatalf("commit: %q %v", st, err)
				}
			}

			live := map[string]string{}
			live["stats"] = mustTool(t, bin, "stats", "--dir", dir)
			live["stats-json"] = mustTool(t, bin, "stats", "--dir", dir, "--json")
			// The object tools answer from the server's database.
			// (The last commit dropped 0's reference to 1.)
			if out := mustTool(t, bin, "refs", "--dir", dir, "1"); !strings.Contains(out, "oid 1: ?, 21 bytes") || !strings.Contains(out, "referred to by: (none)") {
				t.Fatalf("live refs 1: %s", out)
			}
			if out := mustTool(t, bin, "dump", "--dir", dir, "--raw", "1"); out != string(record.Build(1, []byte("one again"))) {
				t.Fatalf("live dump --raw 1: %q", out)
			}
			if out := mustTool(t, bin, "analyze", "--dir", dir, "--json"); !strings.Contains(out, `"objects": 2`) {
				t.Fatalf("live analyze: %s", out)
			}
			live["check"] = mustTool(t, bin, "check", "--dir", dir)
			live["checkpoint"] = mustTool(t, bin, "checkpoint", "--dir", dir)
			live["gc"] = mustTool(t, bin, "gc", "--dir", dir)
			live["gc-full"] = mustTool(t, bin, "gc", "--full", "--dir", dir)
			liveExport := filepath.Join(base, "live.durus")
			live["export"] = mustTool(t, bin, "export", "--dir", dir, liveExport)
			liveBackup := filepath.Join(base, "live-backup")
			live["backup"] = mustTool(t, bin, "backup", "--dir", dir, liveBackup)
			liveStream := filepath.Join(base, "live-backup.tar.sz")
			live["backup-stream"] = mustTool(t, bin, "backup", "--dir", dir, "--stream", liveStream)

			// Live figures are the server's.
			m, liveKeys := jsonKeys(t, live["stats-json"])
			srv, _ := m["server"].(map[string]any)
			if m["live"] != true || srv == nil || srv["commits"] != float64(3) || srv["connections"] != float64(1) {
				t.Fatalf("live stats: live %v, server %v; want live, 3 commits, 1 connection\n%s", m["live"], srv, live["stats-json"])
			}
			if m["objects"] != float64(2) || m["gc_queue"] != float64(1) {
				t.Fatalf("live stats: objects %v, gc_queue %v; want 2 and 1", m["objects"], m["gc_queue"])
			}
			if kind == backend.BDB {
				m2, _ := jsonKeys(t, mustTool(t, bin, "stats", "--dir", dir, "--json"))
				ck, _ := m2["last_checkpoint"].(map[string]any)
				if ck == nil || ck["lsn"] == nil || ck["lsn"] == "0/0" {
					t.Fatalf("live Berkeley DB stats after a checkpoint: last checkpoint %v", m2["last_checkpoint"])
				}
			} else if _, ok := m["access"]; ok || strings.Contains(live["stats"], "(btree)") {
				t.Fatalf("a LevelDB database shows an access method:\n%s", live["stats"])
			}
			if !strings.Contains(live["gc"], "1 objects removed") {
				t.Fatalf("live gc did not remove the garbage object: %s", live["gc"])
			}
			if code, out, errs := runTool(t, bin, "restore", liveStream, filepath.Join(base, "restored")); code != 0 {
				t.Fatalf("restore of the live stream backup: exit %d\n%s\n%s", code, out, errs)
			}

			// The server stops cleanly and removes its socket.
			c.Close()
			p.quit(t)
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("control socket after a clean exit: %v", err)
			}

			off := map[string]string{}
			off["stats"] = mustTool(t, bin, "stats", "--dir", dir)
			off["stats-json"] = mustTool(t, bin, "stats", "--dir", dir, "--json")
			off["check"] = mustTool(t, bin, "check", "--dir", dir)
			off["checkpoint"] = mustTool(t, bin, "checkpoint", "--dir", dir)
			off["gc"] = mustTool(t, bin, "gc", "--dir", dir)
			off["gc-full"] = mustTool(t, bin, "gc", "--full", "--dir", dir)
			offExport := filepath.Join(base, "off.durus")
			off["export"] = mustTool(t, bin, "export", "--dir", dir, offExport)
			off["backup"] = mustTool(t, bin, "backup", "--dir", dir, liveBackup+"-off")
			off["backup-stream"] = mustTool(t, bin, "backup", "--dir", dir, "--stream", liveStream+"-off")

			// Same shape of output.
			for _, k := range []string{"checkpoint", "gc", "gc-full"} {
				if shape(live[k], dir) != shape(off[k], dir) {
					t.Errorf("%s: live output\n%s\ndiffers in shape from offline\n%s", k, live[k], off[k])
				}
			}
			for _, k := range []string{"export", "backup", "backup-stream"} {
				lv := strings.ReplaceAll(live[k], base+"/live", "OUT")
				ov := strings.ReplaceAll(strings.ReplaceAll(off[k], base+"/off", "OUT"), base+"/live", "OUT")
				ov = strings.ReplaceAll(ov, "-off", "")
				norm := func(s string) string {
					return regexp.MustCompile(`\((bdb|leveldb), [a-z ]+\)`).ReplaceAllString(shape(s, dir), "(KIND, MODE)")
				}
				if norm(lv) != norm(ov) {
					t.Errorf("%s: live output\n%s\ndiffers in shape from offline\n%s", k, lv, ov)
				}
			}
			if kind != backend.BDB && strings.Contains(off["stats"], "(btree)") {
				t.Errorf("a LevelDB database shows an access method offline:\n%s", off["stats"])
			}
			// check: the backend files cannot be verified live; the rest is the same.
			lc, oc := strings.Split(live["check"], "\n"), strings.Split(off["check"], "\n")
			if len(lc) != len(oc) || !strings.Contains(lc[0], "backend verification skipped") || shape(strings.Join(lc[1:], "\n"), dir) != shape(strings.Join(oc[1:], "\n"), dir) {
				t.Errorf("check: live\n%s\noffline\n%s", live["check"], off["check"])
			}
			// stats: offline shows every label but the server's figures.
			ll, ol := statsLabels(live["stats"]), statsLabels(off["stats"])
			for _, l := range ol {
				if !slices.Contains(ll, l) {
					t.Errorf("stats: offline label %q missing live", l)
				}
			}
			for _, l := range []string{"connections", "commits", "read-only", "durability"} {
				if !slices.Contains(ll, l) || slices.Contains(ol, l) {
					t.Errorf("stats: %q must show live only (live %v, offline %v)", l, ll, ol)
				}
			}
			om, offKeys := jsonKeys(t, off["stats-json"])
			for _, k := range offKeys {
				if !slices.Contains(liveKeys, k) && !strings.HasSuffix(k, "_note") {
					t.Errorf("stats --json: offline key %q missing live", k)
				}
			}
			if om["live"] != false || om["server"] != nil || om["last_checkpoint"] != nil || om["last_checkpoint_note"] == nil {
				t.Errorf("offline stats --json: live %v server %v last_checkpoint %v note %v", om["live"], om["server"], om["last_checkpoint"], om["last_checkpoint_note"])
			}
			// The live export holds what the offline one holds.
			a, err1 := os.ReadFile(liveExport)
			b, err2 := os.ReadFile(offExport)
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("live export (%d bytes, %v) differs from the offline one (%d bytes, %v)", len(a), err1, len(b), err2)
			}
			if ents, _ := filepath.Glob(filepath.Join(dir, control.TempPrefix+"*")); len(ents) != 0 {
				t.Errorf("staging directories left: %v", ents)
			}
		})
	}
}

// TestLiveAfterKill9: the socket file of a server killed with SIGKILL
// does not stop the next server, whose tools then run live.
func TestLiveAfterKill9(t *testing.T) {
	bin := cliBinary(t)
	kind := backend.Default()
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, bin, dir, kind)
	p.kill9(t)
	sock := filepath.Join(dir, control.SocketName)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("a killed server left no socket file (the test needs one): %v", err)
	}
	startServe(t, bin, dir, kind)
	out := mustTool(t, bin, "stats", "--dir", dir, "--json")
	if m, _ := jsonKeys(t, out); m["live"] != true {
		t.Fatalf("stats after the restart is not live:\n%s", out)
	}
}

// TestInUseWithoutControlSocket: when a server holds the directory and
// its control socket does not answer, the error names both.
func TestInUseWithoutControlSocket(t *testing.T) {
	bin := cliBinary(t)
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startServe(t, bin, dir, backend.Default())
	if err := os.Remove(filepath.Join(dir, control.SocketName)); err != nil {
		t.Fatal(err)
	}
	for _, tool := range [][]string{{"stats"}, {"check"}, {"gc", "--full"}} {
		code, _, errs := runTool(t, bin, append(tool, "--dir", dir)...)
		if code != exitFailed || !strings.Contains(errs, "in use") || !strings.Contains(errs, "control socket") {
			t.Errorf("%v: exit %d, stderr %q; want 1, naming the lock and the control socket", tool, code, errs)
		}
	}
}

// TestServeWithoutControlSocket: a server that cannot create its control
// socket serves anyway (a read-only directory), and the tools say that
// neither the lock nor the socket let them run.
func TestServeWithoutControlSocket(t *testing.T) {
	bin := cliBinary(t)
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startServe(t, bin, dir, backend.Default()).quit(t)
	// A non-empty directory where the socket belongs cannot be replaced.
	if err := os.MkdirAll(filepath.Join(dir, control.SocketName, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	startServeWait(t, bin, dir, backend.Default(), "no control socket")
	code, _, errs := runTool(t, bin, "stats", "--dir", dir)
	if code != exitFailed || !strings.Contains(errs, "in use") || !strings.Contains(errs, "control socket") {
		t.Fatalf("stats: exit %d, stderr %q", code, errs)
	}
}
