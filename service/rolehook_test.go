package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
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
