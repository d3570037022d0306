package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Freeze sends SIGSTOP to the process pid and returns once every one of
// its threads is stopped (state T or t in /proc/PID/task/TID/stat).
//
// kill(2) returns before a multi-threaded process has stopped: the kernel
// wakes one thread to start the group stop, and the others go on running
// user code until that thread has been scheduled and told them. A test
// that stops a replica and then expects it to acknowledge nothing must
// wait for the stop to be complete, or a thread still running (repmgr's
// message thread, say) may answer in that window.
func Freeze(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("proc: SIGSTOP pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		running, err := runningThreads(pid)
		if err != nil {
			return err
		}
		if running == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proc: pid %d: %d threads still running %v after SIGSTOP: %w", pid, running, timeout, ErrTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// freezeTimeout bounds Signal's wait for a stop.
const freezeTimeout = 10 * time.Second

// Signal sends sig to the process pid; for SIGSTOP it returns once every
// thread is stopped (Freeze, bounded by 10 s), so that "stopped" in a test
// means no thread of the process runs. Every harness that signals a
// process it did not start through Start (the replication tests' sites)
// signals through it.
func Signal(pid int, sig syscall.Signal) error {
	if sig == syscall.SIGSTOP {
		return Freeze(pid, freezeTimeout)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("proc: signal %v to pid %d: %w", sig, pid, err)
	}
	return nil
}

// runningThreads counts the threads of pid that are not stopped. A
// thread that ends while it is read is not counted.
func runningThreads(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tids, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("proc: threads of pid %d: %w", pid, err)
	}
	n := 0
	for _, tid := range tids {
		stat, err := os.ReadFile(filepath.Join(dir, tid.Name(), "stat"))
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("proc: pid %d: %w", pid, err)
		}
		state, err := threadState(stat)
		if err != nil {
			return 0, fmt.Errorf("proc: pid %d thread %s: %w", pid, tid.Name(), err)
		}
		switch state {
		case 'T', 't', 'Z', 'X':
		default:
			n++
		}
	}
	return n, nil
}

// threadState is the state letter of a /proc stat line "TID (COMM) S …";
// COMM may hold spaces and parentheses, so the last ')' ends it.
func threadState(stat []byte) (byte, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) || stat[i+1] != ' ' {
		return 0, fmt.Errorf("malformed stat line %q", stat)
	}
	return stat[i+2], nil
}
