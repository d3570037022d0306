//go:build bdb

package bdb_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// crashChild is the body of the child process of TestCrashRecovery: it
// commits records forever (Sync, or NoSync followed by Flush), printing the
// index of each acknowledged commit, until it is killed.
func crashChild(dir string) {
	s, err := bdb.OpenStore(kvtest.Options(dir))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		tx, err := s.Begin(context.Background(), true)
		if err == nil {
			err = tx.Put("objects", oidKey(uint64(i)), record(uint64(i)))
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
	os.Exit(m.Run())
}

// TestCrashRecovery SIGKILLs a process in the middle of committing and
// reopens the directory: the lock is free again, recovery runs (DB_REGISTER
// notices the dead owner), and every acknowledged commit is there.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BDB_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	deadline := time.Now().Add(20 * time.Second)
	for sc.Scan() {
		line := sc.Text()
		n, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("child: %s", line)
		}
		last = n
		if last >= 200 || time.Now().After(deadline) {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if last < 10 {
		t.Fatalf("child acknowledged only %d commits", last+1)
	}
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
