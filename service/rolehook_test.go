package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/metrics"
)

// hookLog returns a logger writing to a buffer the test reads.
func hookLog() (*slog.Logger, *testlog.Buffer) {
	buf := &testlog.Buffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// readLines returns the lines of path (none if it does not exist yet).
func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestRoleHookOrderEnvSerial: every change runs the command once, in
// order, one run at a time, with DURUSBDB_ROLE and DURUSBDB_MASTER set; a
// repeated change runs nothing; output is logged.
func TestRoleHookOrderEnvSerial(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	lock := filepath.Join(dir, "lock")
	// A run that overlaps another one finds the lock file and says so.
	script := `if [ -e "$LOCK" ]; then echo OVERLAP >> "$OUT"; fi; : > "$LOCK"; sleep 0.05; ` +
		`echo "$DURUSBDB_ROLE $DURUSBDB_MASTER $DURUSBDB_MASTER_REPL" >> "$OUT"; rm "$LOCK"; echo hello from the hook`
	t.Setenv("OUT", out)
	t.Setenv("LOCK", lock)
	log, logs := hookLog()
	h := startRoleHook(RoleHookConfig{Command: script, Timeout: 10 * time.Second}, log)
	changes := []kv.RoleInfo{
		{Role: "starting"},
		{Role: "replica", MasterDurusAddr: "a:1", MasterReplAddr: "a:2"},
		{Role: "replica", MasterDurusAddr: "a:1", MasterReplAddr: "a:2", Lag: time.Second}, // a repeat: no run
		{Role: "master", MasterDurusAddr: "b:1", MasterReplAddr: "b:2"},
		{Role: "replica", MasterDurusAddr: "c:1", MasterReplAddr: "c:2"},
	}
	for _, ri := range changes {
		h.Notify(ri)
	}
	want := []string{"starting  ", "replica a:1 a:2", "master b:1 b:2", "replica c:1 c:2"}
	testwait.For(t, "four hook runs", func() bool { return len(readLines(out)) >= len(want) })
	h.Close(context.Background())
	got := readLines(out)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("runs %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "hello from the hook") {
		t.Errorf("the command's output is not logged: %s", logs)
	}
	h.Notify(kv.RoleInfo{Role: "master"}) // after Close: ignored, no panic
}

// TestRoleHookTimeoutAndFailure: a command that overruns its timeout is
// killed (with its children) and logged, a failing one is logged, and
// the next change still runs.
func TestRoleHookTimeoutAndFailure(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	t.Setenv("OUT", out)
	script := `case "$DURUSBDB_ROLE" in
	  syncing) sleep 30 & wait ;;
	  replica) echo broken >&2; exit 3 ;;
	  *) echo "$DURUSBDB_ROLE" >> "$OUT" ;;
	esac`
	log, logs := hookLog()
	h := startRoleHook(RoleHookConfig{Command: script, Timeout: 200 * time.Millisecond}, log)
	defer h.Close(context.Background())
	start := time.Now()
	h.Notify(kv.RoleInfo{Role: "syncing"})
	h.Notify(kv.RoleInfo{Role: "replica"})
	h.Notify(kv.RoleInfo{Role: "master"})
	testwait.For(t, "the run after the killed and the failed ones", func() bool { return len(readLines(out)) == 1 })
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the overrunning command was not killed at its timeout: %v", d)
	}
	l := logs.String()
	for _, want := range []string{"killed after its timeout", "command failed", "exit status 3", "broken"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

// TestRoleHookOutputBounded: a command that prints without end costs the
// server a bounded buffer, not its output (64 MiB here): the first
// maxHookOutput bytes are logged, with how many more were dropped.
func TestRoleHookOutputBounded(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "runs")
	t.Setenv("OUT", out)
	log, logs := hookLog()
	h := startRoleHook(RoleHookConfig{Command: `head -c 67108864 /dev/zero | tr '\0' x; echo done >> "$OUT"`, Timeout: time.Minute}, log)
	defer h.Close(context.Background())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h.Notify(kv.RoleInfo{Role: "master"})
	testwait.For(t, "the hook's run", func() bool { return strings.Contains(logs.String(), "command done") })
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("the server allocated %d MiB for 64 MiB of hook output; want a bounded buffer", grew>>20)
	}
	l := logs.String()
	if !strings.Contains(l, strings.Repeat("x", 100)) || !strings.Contains(l, "dropped") {
		t.Errorf("log lacks the output's start or the dropped count:\n%.600s", l)
	}
	if len(l) > 4*maxHookOutput {
		t.Errorf("log holds %d bytes of one run", len(l))
	}
}

// fakeTracker is a roleTracker whose changes the test fires.
type fakeTracker struct {
	mu   sync.Mutex
	ri   kv.RoleInfo
	subs []func(kv.RoleInfo)
}

func (f *fakeTracker) Role() kv.RoleInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ri
}

func (f *fakeTracker) OnRoleChange(fn func(kv.RoleInfo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, fn)
}

func (f *fakeTracker) change(ri kv.RoleInfo) {
	f.mu.Lock()
	f.ri = ri
	subs := slices.Clone(f.subs)
	f.mu.Unlock()
	for _, fn := range subs {
		fn(ri)
	}
}

// TestWatchRole: with Replication, the metrics report the tracker's role
// and --on-role-change runs for the role at start and on every change;
// without it, neither.
func TestWatchRole(t *testing.T) {
	out := filepath.Join(t.TempDir(), "runs")
	t.Setenv("OUT", out)
	log, _ := hookLog()

	standalone := &instance{cfg: Config{RoleHook: RoleHookConfig{Command: `echo "$DURUSBDB_ROLE" >> "$OUT"`}}, log: log,
		observer: metrics.New(metrics.Options{NoRuntime: true})}
	ft := &fakeTracker{ri: kv.RoleInfo{Role: kv.RoleStarting}}
	if err := standalone.watchRole(ft); err != nil {
		t.Fatal(err)
	}
	if len(ft.subs) != 0 || standalone.observer.Role().Role != kv.RoleStarting {
		t.Fatalf("a standalone server watches the role: %d hooks, role %q", len(ft.subs), standalone.observer.Role().Role)
	}

	in := &instance{cfg: Config{Replication: &kv.Replication{Listen: "127.0.0.1:1"},
		RoleHook: RoleHookConfig{Command: `echo "$DURUSBDB_ROLE $DURUSBDB_MASTER" >> "$OUT"`}}, log: log,
		observer: metrics.New(metrics.Options{NoRuntime: true})}
	if err := in.watchRole(ft); err != nil {
		t.Fatal(err)
	}
	// The role the site had before the hook was attached is run first.
	testwait.For(t, "the hook's run for the initial role", func() bool { return len(readLines(out)) == 1 })
	ft.change(kv.RoleInfo{Role: kv.RoleMaster, MasterDurusAddr: "127.0.0.1:2972"})
	if got := in.observer.Role(); got.Role != kv.RoleMaster || got.MasterDurusAddr != "127.0.0.1:2972" {
		t.Errorf("metrics role %+v", got)
	}
	testwait.For(t, "the hook's run for the change", func() bool { return len(readLines(out)) == 2 })
	in.cleanup() // stops the hook
	if got := readLines(out); strings.Join(got, "|") != "starting |master 127.0.0.1:2972" {
		t.Errorf("hook runs %q", got)
	}
}
