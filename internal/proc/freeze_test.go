package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFreeze: when Freeze (through Process.Signal) returns, every thread of a (multi-threaded Go)
// child reads "stopped" in its /proc status file, a second source beside
// the stat lines Freeze polls; after SIGCONT the child serves again.
func TestFreeze(t *testing.T) {
	p, sock := startChild(t)
	if err := p.WaitReady(sock, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 20; round++ {
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join("/proc", strconv.Itoa(p.Pid()), "task")
		tids, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(tids) < 2 {
			t.Fatalf("child has %d threads; the test needs a multi-threaded one", len(tids))
		}
		for _, tid := range tids {
			b, err := os.ReadFile(filepath.Join(dir, tid.Name(), "status"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "\nState:\tT (stopped)") {
				line := string(b)[strings.Index(string(b), "State:"):]
				t.Fatalf("round %d: thread %s not stopped after Freeze: %.30s", round, tid.Name(), line)
			}
		}
		if err := p.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Quit(sock, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := Freeze(p.Pid(), time.Second); err == nil {
		t.Fatal("Freeze of an exited process: nil error")
	}
}

// TestThreadState: the state follows the last ')' of the line, whatever
// the command name holds.
func TestThreadState(t *testing.T) {
	for _, c := range []struct {
		line string
		want byte
	}{
		{"42 (durusbdb) S 1 42", 'S'},
		{"42 (a) (b) T 1 42", 'T'},
		{"42 (x)y) R 1", 'R'},
	} {
		if got, err := threadState([]byte(c.line)); err != nil || got != c.want {
			t.Errorf("threadState(%q) = %q, %v; want %q", c.line, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "42 (x", "42 (x)", "42 (x)S"} {
		if _, err := threadState([]byte(bad)); err == nil {
			t.Errorf("threadState(%q): nil error", bad)
		}
	}
}
