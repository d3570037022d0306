package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/sysmon"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestServeCommandInProcess runs `durusbdb serve` in this process (flags
// mapped to service.Serve): it creates the missing directory, serves a
// commit and a load, and stops cleanly with exit 0 when its context ends.
// Its re-execution to keep sysmon awake fails here, and serving goes on.
func TestServeCommandInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	logs := &testlog.Buffer{}
	code := make(chan int, 1)
	reexecEnv := make(chan []string, 1)
	reexec := func(env []string) error {
		reexecEnv <- env
		return errors.New("re-execution refused by the test")
	}
	go func() {
		code <- run(ctx, cmdIO{stdin: strings.NewReader(""), stdout: &out, stderr: logs, reexec: reexec},
			[]string{"serve", "--dir", dir, "--create", "--port", "0", "--logginglevel", "20"})
	}()
	serving := regexp.MustCompile(`msg=serving address=(\S+)`)
	var addr string
	for deadline := time.Now().Add(60 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := serving.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before serving:\n%s", c, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", logs)
		}
	}
	select {
	case env := <-reexecEnv:
		if !slices.Contains(env, "GODEBUG="+sysmon.Setting) {
			t.Fatalf("serve re-executed with %q, want GODEBUG=%s in it", env, sysmon.Setting)
		}
	default:
		t.Fatalf("serve did not try to re-execute itself:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "re-execution refused by the test; serving with sysmon as it is") {
		t.Fatalf("the failed re-execution was not reported:\n%s", logs)
	}
	c, err := wire.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewOIDs(1); err != nil {
		t.Fatal(err)
	}
	root := record.Build(0, []byte("root"))
	if _, st, err := c.Commit([][]byte{root}); err != nil || st != wire.StatusOK {
		t.Fatalf("commit: %c %v", st, err)
	}
	if st, got, err := c.Load(0); err != nil || st != wire.StatusOK || !bytes.Equal(got, root) {
		t.Fatalf("load: %c %q %v", st, got, err)
	}
	c.Close()
	cancel()
	select {
	case got := <-code:
		if got != exitOK || !strings.Contains(logs.String(), "database closed") {
			t.Fatalf("serve after cancel: exit %d\n%s", got, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}
}
