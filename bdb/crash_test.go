//go:build bdb

package bdb_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// crashChild is the body of the child process of TestCrashRecovery: it
// commits records forever (Sync, or NoSync followed by Flush), printing the
// index of each acknowledged commit, until it is killed.
func crashChild(dir string) {
	first := 0
	if v := os.Getenv("BDB_CRASH_FIRST"); v != "" {
		first, _ = strconv.Atoi(v)
	}
	big := os.Getenv("BDB_CRASH_BIG") != ""
	ahead, _ := strconv.Atoi(os.Getenv("BDB_CRASH_AHEAD"))
	s, err := bdb.OpenStore(kvtest.Options(dir))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := first; ; i++ {
		if ahead > 0 && i == first+ahead {
			// Hold until the next log file is written ahead (prezero):
			// the kill then finds it there, zero-filled.
			for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
				st, err := s.Env().Stats()
				if err != nil {
					fmt.Println("error", err)
					os.Exit(1)
				}
				next := filepath.Join(dir, fmt.Sprintf("log.%010d", st.Log.CurFile+1))
				if _, err := os.Stat(next); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		tx, err := s.Begin(context.Background(), true)
		if err == nil {
			v := record(uint64(i))
			if big {
				v = append(v, make([]byte, 64<<10)...)
			}
			err = tx.Put("objects", oidKey(uint64(i)), v)
		}
		if err == nil {
			d := kv.Sync
			if i%2 == 1 {
				d = kv.NoSync
			}
			err = tx.Commit(d)
			if err == nil && d == kv.NoSync {
				err = s.Flush()
			}
		}
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(i)
	}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("BDB_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if js := os.Getenv("BDB_REPL_SITE"); js != "" {
		replSiteMain(js)
		return
	}
	os.Exit(m.Run())
}

// TestCrashRecovery SIGKILLs a process in the middle of committing and
// reopens the directory: the lock is free again, recovery runs (DB_REGISTER
// notices the dead owner), and every acknowledged commit is there.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	last := crashAfter(t, dir, 0, 200)
	s := mustOpen(t, kvtest.Options(dir))
	tx, err := s.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	for i := 0; i <= last; i++ {
		v, err := tx.Get("objects", oidKey(uint64(i)))
		if err != nil || !strings.HasPrefix(string(v), fmt.Sprintf("record-%d-", i)) {
			t.Fatalf("acknowledged commit %d of %d lost after crash: %q %v", i, last, v, err)
		}
	}
}

// crashAfter runs crashChild in dir, numbering its commits from first, and
// SIGKILLs it once commit first+n is acknowledged (or after 20 s); it
// returns the last acknowledged index.
func crashAfter(t *testing.T, dir string, first, n int, env ...string) int {
	t.Helper()
	child := proc.StartChildT(t, nil, append([]string{"BDB_CRASH_CHILD=" + dir, "BDB_CRASH_FIRST=" + strconv.Itoa(first)}, env...)...)
	cmd, out := child.Cmd, child.Stdout
	sc := bufio.NewScanner(out)
	last := first - 1
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() {
		line := sc.Text()
		v, err := strconv.Atoi(line)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %s", line)
		}
		last = v
		if last >= first+n || time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if last < first+10 {
		t.Fatalf("child acknowledged only %d commits", last-first+1)
	}
	return last
}

// recoverLogged runs normal recovery in dir and returns libdb's verbose
// recovery messages with the result.
func recoverLogged(t *testing.T, dir string) (bdb.RecoverInfo, string) {
	t.Helper()
	mf := filepath.Join(t.TempDir(), "recovery.txt")
	info, err := bdb.RecoverEnv(dir, bdb.RecoverOptions{MessageFile: mf})
	msgs, _ := os.ReadFile(mf)
	if err != nil {
		t.Fatalf("recover %s: %v\n%s", dir, err, msgs)
	}
	return info, string(msgs)
}

var (
	reRecoveryStart = regexp.MustCompile(`Recovery starting from \[(\d+)\]\[(\d+)\]`)
	reLastValid     = regexp.MustCompile(`Finding last valid log LSN: file: (\d+) offset (\d+)`)
)

// lsnLess compares the LSNs [f1][o1] < [f2][o2], given as decimal strings.
func lsnLess(f1, o1, f2, o2 string) bool {
	a, _ := strconv.Atoi(f1)
	b, _ := strconv.Atoi(o1)
	c, _ := strconv.Atoi(f2)
	d, _ := strconv.Atoi(o2)
	return a < c || (a == c && b < d)
}

// TestRecoveryCheckpointIsDurable: the checkpoint that recovery writes
// reaches the log file, so the next recovery after a later crash starts
// there and never replays (and re-undoes) transactions of a process that
// died before the previous recovery. Without the flush, every recovery
// started from the first log record ([1][28]) and a later crash could
// leave a directory that no recovery opens (issue: two crashes while the
// collector deletes).
func TestRecoveryCheckpointIsDurable(t *testing.T) {
	dir := t.TempDir()
	last := crashAfter(t, dir, 0, 300)
	_, msgs1 := recoverLogged(t, dir)
	end1 := reLastValid.FindStringSubmatch(msgs1)
	if end1 == nil {
		t.Fatalf("first recovery found no end of the log:\n%s", msgs1)
	}
	last = crashAfter(t, dir, last+1, 300)
	_, msgs := recoverLogged(t, dir)
	m := reRecoveryStart.FindStringSubmatch(msgs)
	if m == nil {
		t.Fatalf("second recovery did not run:\n%s", msgs)
	}
	if lsnLess(m[1], m[2], end1[1], end1[2]) {
		t.Fatalf("second recovery started from [%s][%s], before the end [%s][%s] of the log the first recovery replayed: the first recovery's checkpoint never reached the log",
			m[1], m[2], end1[1], end1[2])
	}
	s := mustOpen(t, kvtest.Options(dir))
	for i := 0; i <= last; i++ {
		v, err := s.Get("objects", oidKey(uint64(i)))
		if err != nil || !strings.HasPrefix(string(v), fmt.Sprintf("record-%d-", i)) {
			t.Fatalf("acknowledged commit %d of %d lost after two crashes: %q %v", i, last, v, err)
		}
	}
}

// TestFailedOpenDoesNotPoisonNextOpen: a writable open whose recovery
// fails (the first of two log files, which it needs, is missing) leaves
// nothing behind in this process: once the file is back, the next open in
// the same process succeeds instead of failing with BDB1528 ("DB_REGISTER
// limits processes to one open DB_ENV handle per environment").
func TestFailedOpenDoesNotPoisonNextOpen(t *testing.T) {
	dir := t.TempDir()
	last := crashAfter(t, dir, 0, 240, "BDB_CRASH_BIG=1") // 64 KiB records: two 10 MB log files
	logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	if len(logs) < 2 {
		t.Fatalf("want two log files, have %v", logs)
	}
	aside := filepath.Join(t.TempDir(), "log")
	if err := os.Rename(logs[0], aside); err != nil {
		t.Fatal(err)
	}
	s, err := bdb.OpenStore(kvtest.Options(dir))
	if err == nil {
		s.Close()
		t.Fatal("open without the log file that recovery needs succeeded")
	}
	t.Logf("open without %s: %v", logs[0], err)
	if _, err := bdb.RecoverEnv(dir, bdb.RecoverOptions{}); err == nil {
		t.Fatal("recovery without the log file that it needs succeeded")
	} else {
		t.Logf("recovery without %s: %v", logs[0], err)
	}
	if err := os.Rename(aside, logs[0]); err != nil {
		t.Fatal(err)
	}
	recoverLogged(t, dir)
	s = mustOpen(t, kvtest.Options(dir))
	if v, err := s.Get("objects", oidKey(uint64(last))); err != nil || !strings.HasPrefix(string(v), fmt.Sprintf("record-%d-", last)) {
		t.Fatalf("acknowledged commit %d after recovery: %q %v", last, v, err)
	}
}

// TestReadOnlyOpenAfterCrash: a read-only open of a directory whose writer
// was killed never shows the files as the crash left them (committed
// transactions only in the log): in a writable directory it runs recovery
// first and sees every acknowledged commit; in a directory it may not
// write, it refuses with an error that wraps kv.ErrNeedRecover and names
// `durusbdb recover`.
func TestReadOnlyOpenAfterCrash(t *testing.T) {
	ro := kvtest.Options("")
	ro.ReadOnly, ro.Create = true, false
	t.Run("writable directory", func(t *testing.T) {
		dir := t.TempDir()
		last := crashAfter(t, dir, 0, 300)
		o := ro
		o.Dir = dir
		s, err := bdb.OpenStore(o)
		if err != nil {
			t.Fatalf("read-only open after a crash: %v", err)
		}
		defer s.Close()
		for i := 0; i <= last; i++ {
			v, err := s.Get("objects", oidKey(uint64(i)))
			if err != nil || !strings.HasPrefix(string(v), fmt.Sprintf("record-%d-", i)) {
				t.Fatalf("read-only open after a crash lacks acknowledged commit %d of %d: %q %v", i, last, v, err)
			}
		}
		if need, err := bdb.NeedsRecovery(dir); err != nil || need {
			t.Fatalf("after the read-only open's recovery: needs recovery %v, %v", need, err)
		}
	})
	t.Run("read-only directory", func(t *testing.T) {
		dir := t.TempDir()
		crashAfter(t, dir, 0, 50)
		view := roMount(t, dir)
		o := ro
		o.Dir = view
		s, err := bdb.OpenStore(o)
		if err == nil {
			s.Close()
			t.Fatal("read-only open of a crashed, unwritable directory succeeded")
		}
		if !errors.Is(err, kv.ErrNeedRecover) || !strings.Contains(err.Error(), "durusbdb recover") {
			t.Fatalf("refusal %v: want kv.ErrNeedRecover naming `durusbdb recover`", err)
		}
	})
	t.Run("clean close", func(t *testing.T) {
		dir := t.TempDir()
		s := mustOpen(t, kvtest.Options(dir))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if need, err := bdb.NeedsRecovery(dir); err != nil || need {
			t.Fatalf("after a clean close: needs recovery %v, %v", need, err)
		}
		o := ro
		o.Dir = roMount(t, dir)
		s2, err := bdb.OpenStore(o)
		if err != nil {
			t.Fatalf("read-only open of a cleanly closed, unwritable directory: %v", err)
		}
		s2.Close()
	})
}

// TestCheckpointAfterCrashRemovesLogs: after a crash, recovery at open and
// one checkpoint with log removal leave only the log files still needed
// (the last one or two), however much the dead process wrote: a server
// that crashes again and again does not pile up logs.
func TestCheckpointAfterCrashRemovesLogs(t *testing.T) {
	dir := t.TempDir()
	crashAfter(t, dir, 0, 700, "BDB_CRASH_BIG=1") // 64 KiB records: about 4 log files of 10 MB
	before, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	s := mustOpen(t, kvtest.Options(dir))
	if err := s.Checkpoint(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	t.Logf("log files: %d after the crash, %d after recovery and a checkpoint", len(before), len(after))
	if len(before) < 3 || len(after) > 2 {
		t.Fatalf("log files: %d after the crash (want >= 3), %d after recovery and a checkpoint (want <= 2)", len(before), len(after))
	}
}

// TestCloseRemovesRegions: a clean close leaves no region files, so that
// libdb's own tools run on the stopped directory in an environment of
// their own; the next open recreates them (and finds every record).
func TestCloseRemovesRegions(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	tx, err := s.Begin(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Put("objects", oidKey(1), record(1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(kv.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if regions, _ := filepath.Glob(filepath.Join(dir, "__db.0*")); len(regions) != 0 {
		t.Fatalf("region files after a clean close: %v", regions)
	}
	out, err := exec.Command("db5.3_verify", "-h", dir, "objects.db").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "succeeded") {
		t.Fatalf("db5.3_verify after a clean close: %v\n%s", err, out)
	}
	s = mustOpen(t, kvtest.Options(dir))
	if v, err := s.Get("objects", oidKey(1)); err != nil || !strings.HasPrefix(string(v), "record-1-") {
		t.Fatalf("record after reopen: %q %v", v, err)
	}
}
