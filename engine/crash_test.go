package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/kv"
)

// The kill -9 harness: a test re-executes the test binary as a child
// process (TestMain dispatches on envCrashChild, so the child is not a
// listed test that could pass or fail). The child commits with the
// durability mode under test and prints "ack <oid>" after each commit's
// Pending.Wait returned; the parent SIGKILLs it once it has read enough
// acknowledgements and then reopens the directory.
const (
	envCrashChild   = "DURUSBDB_ENGINE_CRASH_CHILD" // the directory to commit into
	envCrashBackend = "DURUSBDB_ENGINE_CRASH_BACKEND"
	envCrashMode    = "DURUSBDB_ENGINE_CRASH_MODE"
	envCrashWorkers = "DURUSBDB_ENGINE_CRASH_WORKERS"
)

// crashChildCommits bounds what a child commits: far more than any test
// waits for, so the child is still committing when it is killed.
const crashChildCommits = 1 << 20

// crashTimeout bounds a child's run: reached only when something hangs.
const crashTimeout = 60 * time.Second

// crashChildMain is the child's main: it returns the exit status. It exits
// on its own only on an error or after crashTimeout (a parent that died).
func crashChildMain() int {
	if err := crashChild(); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	return 0
}

func crashChild() error {
	mode, err := kv.ParseDurability(os.Getenv(envCrashMode))
	if err != nil {
		return err
	}
	workers, err := strconv.Atoi(os.Getenv(envCrashWorkers))
	if err != nil {
		return fmt.Errorf("workers: %w", err)
	}
	o := testOpts(os.Getenv(envCrashBackend))
	o.Durability = mode
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), crashTimeout)
	defer cancel()
	db, err := Open(ctx, os.Getenv(envCrashChild), o)
	if err != nil {
		return err
	}
	defer db.Close()
	first, err := db.AllocOIDs(crashChildCommits)
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	commit := func(oid uint64) error {
		p, err := db.Stage(ctx, [][]byte{rec(oid)})
		if err == nil {
			err = p.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("commit oid %d: %w", oid, err)
		}
		outMu.Lock()
		defer outMu.Unlock()
		_, err = fmt.Fprintf(os.Stdout, "ack %d\n", oid) // one write: unbuffered
		return err
	}
	if err := commit(0); err != nil {
		return err
	}
	var next atomic.Uint64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				i := next.Add(1)
				if i >= crashChildCommits {
					errs <- nil
					return
				}
				if oid := first + i; oid != 0 {
					if err := commit(oid); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			return err
		}
	}
	return errors.New("ran out of commits before being killed")
}

// crashRun runs a child committing into a new directory with mode and
// workers committing goroutines, kills it with SIGKILL once it has
// acknowledged killAfter commits, and returns the directory and every
// acknowledged oid in the order the child printed them.
func crashRun(t *testing.T, kind string, mode kv.Durability, workers, killAfter int) (string, []uint64) {
	t.Helper()
	dir := t.TempDir()
	var stderr bytes.Buffer
	child := proc.StartChildT(t, &stderr,
		envCrashChild+"="+dir, envCrashBackend+"="+kind,
		envCrashMode+"="+mode.String(), envCrashWorkers+"="+strconv.Itoa(workers))
	cmd, out := child.Cmd, child.Stdout
	var hung atomic.Bool
	timer := time.AfterFunc(crashTimeout, func() { hung.Store(true); cmd.Process.Kill() })
	defer timer.Stop()
	var acked []uint64
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		s, ok := strings.CutPrefix(sc.Text(), "ack ")
		oid, err := strconv.ParseUint(s, 10, 64)
		if !ok || err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		acked = append(acked, oid) // printed after Wait: acknowledged
		if len(acked) >= killAfter && !killed {
			killed = true
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := cmd.Wait()
	if hung.Load() {
		t.Fatalf("child hung after %d acknowledgements; stderr:\n%s", len(acked), stderr.Bytes())
	}
	var ee *exec.ExitError
	if !killed || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v after %d acknowledgements, not killed; stderr:\n%s", err, len(acked), stderr.Bytes())
	}
	return dir, acked
}

// reopenAfterCrash opens dir after a crashRun, checks that it is marked
// unclean, consistent, and never hands out an acknowledged oid again, and
// returns which of acked survived (each loads with its record) and which
// did not.
func reopenAfterCrash(t *testing.T, kind string, mode kv.Durability, dir string, acked []uint64) (kept, lost []uint64) {
	t.Helper()
	o := testOpts(kind)
	o.Durability = mode
	db := openTest(t, dir, o)
	if !db.UncleanShutdown() {
		t.Error("in_use not found after SIGKILL")
	}
	if h, last := db.AllocCursor(), slices.Max(acked); h <= last {
		t.Fatalf("alloc cursor %d not above acknowledged oid %d", h, last)
	}
	rep, err := db.Check(context.Background(), false)
	if err != nil || !rep.OK() {
		t.Fatalf("check after the crash: %v %v", err, rep.Problems)
	}
	for _, oid := range acked {
		got, err := db.Load(oid)
		switch {
		case errors.Is(err, ErrNotFound):
			lost = append(lost, oid)
		case err != nil:
			t.Fatalf("load oid %d after the crash: %v", oid, err)
		case !bytes.Equal(got, rec(oid)):
			t.Fatalf("oid %d after the crash: %q, want %q", oid, got, rec(oid))
		default:
			kept = append(kept, oid)
		}
	}
	verifyInvariants(t, db)
	return kept, lost
}
