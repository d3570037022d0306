//go:build bdb

package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
)

// TestServeSignalWhileWaitingForGroup: SIGTERM to a replication site still
// waiting for its group (no peer answers) stops it at once and cleanly,
// exit 0, with a line saying the open was abandoned; it used to wait out
// the 12 s watchdog and exit 1 ("shutdown took longer than 10 s").
func TestServeSignalWhileWaitingForGroup(t *testing.T) {
	bin := cliBinary(t)
	base := t.TempDir()
	free := func() string { // a port nothing listens on
		l := listenHeld(t)
		defer l.Close()
		return l.Addr().String()
	}
	addr, peers := free(), []string{free(), free()}
	p := proc.StartT(t, proc.Options{}, bin, "serve", "--dir", filepath.Join(base, "db"), "--create",
		"--address", filepath.Join(base, "durus.sock"),
		"--repl-listen", addr, "--repl-peer", peers[0], "--repl-peer", peers[1])
	if err := p.WaitUntil(60*time.Second, "the site waiting for its group", func() bool {
		return strings.Contains(p.Log(), "waiting for the group")
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(30 * time.Second); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Errorf("exit %d after SIGTERM while waiting for the group, want 0; log:\n%s", ee.ExitCode(), p.LogTail(20))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopped %v after SIGTERM, want at once (the watchdog's limit is 12 s)", took)
	}
	if log := p.Log(); !strings.Contains(log, "open abandoned") || strings.Contains(log, "shutdown took longer") {
		t.Errorf("log does not say the open was abandoned on the signal:\n%s", p.LogTail(20))
	}
}
