// Package sysmon keeps the Go runtime's system monitor thread (sysmon)
// out of its deep sleep in a server process.
//
// When every P is idle the runtime parks sysmon on a futex, and the next
// system call of any goroutine wakes it again (runtime.entersyscall); once
// woken it ticks every 20 µs for about a millisecond before it backs off.
// A database server that goes idle between requests many thousand times a
// second pays that park, wake-up and tick train again and again: on this
// project's 2-core machines `perf record -e syscalls:sys_enter_futex` on a
// forwarding replica put 10% of its futex calls in sysmon's park and
// wake-up, and the 6th session's profile of one durable connection 16.6% of
// the server's CPU in sysmon's ticks. The runtime never parks sysmon while
// GODEBUG's schedtrace is set (runtime/proc.go, sysmon: "sysmon should not
// enter deep sleep if schedtrace is enabled"); its idle back-off (20 µs
// doubling up to 10 ms) still applies. schedtrace's own output is a line on
// standard error every Period: with the largest period (2^31−1 ms, 24.8
// days) a process prints its first line only when the machine has been up
// longer than that, and one more per 24.8 days.
//
// GODEBUG is read once when the runtime starts, so a process that wants the
// setting re-executes itself with it (Exec): same pid, arguments and
// standard streams (Go opens every other file close-on-exec).
// docs/PERFORMANCE.md has the A/B figures.
package sysmon

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Setting is the GODEBUG entry that keeps sysmon awake: schedtrace at its
// largest period (the runtime reads an int32 of milliseconds).
const Setting = "schedtrace=2147483647"

// Environ returns env (KEY=value pairs) with Setting added to GODEBUG, and
// whether it changed anything. An env whose GODEBUG already names
// schedtrace is returned as it is: the operator's choice (schedtrace=0
// turns this off) stands.
func Environ(env []string) ([]string, bool) {
	if _, named := schedtrace(env); named {
		return env, false
	}
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		val, ok := strings.CutPrefix(kv, "GODEBUG=")
		switch {
		case !ok:
			out = append(out, kv)
		case found:
			// a duplicate: the runtime reads the first one
		case val == "":
			found = true
			out = append(out, "GODEBUG="+Setting)
		default:
			found = true
			out = append(out, "GODEBUG="+val+","+Setting)
		}
	}
	if !found {
		out = append(out, "GODEBUG="+Setting)
	}
	return out, true
}

// GODEBUG returns the value of env's first GODEBUG entry, the one the
// runtime reads ("" when there is none).
func GODEBUG(env []string) string {
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			return val
		}
	}
	return ""
}

// schedtrace returns the schedtrace value of env's (first) GODEBUG and
// whether it names one.
func schedtrace(env []string) (string, bool) {
	for _, item := range strings.Split(GODEBUG(env), ",") {
		if k, v, _ := strings.Cut(item, "="); strings.TrimSpace(k) == "schedtrace" {
			return v, true
		}
	}
	return "", false
}

// Active reports whether this process's runtime keeps sysmon awake: its
// GODEBUG sets schedtrace above zero (Setting, or the operator's own).
func Active() bool {
	v, _ := schedtrace(os.Environ())
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	return err == nil && n > 0
}

// Exec replaces the running program with itself, same arguments, with env
// as its environment. It returns only on failure. On Linux the new image
// keeps the parent-death signal the process was started with (the Python
// shim's PR_SET_PDEATHSIG), which execve from another thread than the main
// one would drop.
func Exec(env []string) error {
	exe := "/proc/self/exe" // the running binary even if its path was replaced
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("sysmon: re-execute: %w", err)
		}
	}
	unlock := keepParentDeathSignal()
	err := syscall.Exec(exe, os.Args, env)
	unlock()
	return fmt.Errorf("sysmon: re-execute %s: %w", exe, err)
}
