package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/sysmon"
)

// TestServeKeepsSysmonAwake: a real `durusbdb serve` re-executes itself in
// place (same pid, still serving) with sysmon.Setting in its GODEBUG; not
// with --keep-sysmon-awake=false, and an operator's own schedtrace stands;
// its start-up line says whether sysmon is kept awake.
func TestServeKeepsSysmonAwake(t *testing.T) {
	bin := cliBinary(t)
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  string // GODEBUG of the serving process ("" for none)
		awake bool   // what its start-up line says
	}{
		{"default", nil, nil, sysmon.Setting, true},
		{"other GODEBUG kept", []string{"GODEBUG=madvdontneed=1"}, nil, "madvdontneed=1," + sysmon.Setting, true},
		{"flag off", nil, []string{"--keep-sysmon-awake=false"}, "", false},
		{"operator's schedtrace", []string{"GODEBUG=schedtrace=0"}, nil, "schedtrace=0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := filepath.Join(dir, "durus.sock")
			env := append([]string{"GODEBUG="}, tc.env...) // none inherited from the test run
			argv := append([]string{bin, "serve", "--dir", filepath.Join(dir, "db"), "--create", "--address", addr}, tc.flags...)
			p := proc.StartT(t, proc.Options{Env: env}, argv...)
			want := "sysmon_awake=" + strconv.FormatBool(tc.awake)
			if err := p.WaitReady(addr, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/environ")
			if err != nil {
				t.Fatalf("environment of the server: %v", err)
			}
			got := ""
			for _, kv := range strings.Split(string(raw), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					got = v // the last one: what the child was given
				}
			}
			if got != tc.want {
				t.Fatalf("server pid %d runs with GODEBUG=%q, want %q", p.Pid(), got, tc.want)
			}
			if err := p.WaitUntil(30*time.Second, "log line with "+want, func() bool { return strings.Contains(p.Log(), want) }); err != nil {
				t.Fatal(err)
			}
			if err := p.Quit(addr, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// pdeathHelperEnv, when set, makes TestServeParentDeathHelper the parent
// process of TestServeParentDeathSignalSurvivesReexec: its value is the
// serve command line (one argument a line) and the log path.
const pdeathHelperEnv = "SYSMON_TEST_PDEATH_HELPER"

// TestServeParentDeathHelper is not a test of its own: run by
// TestServeParentDeathSignalSurvivesReexec with pdeathHelperEnv set, it
// starts `durusbdb serve` with SIGTERM as its parent-death signal (as the
// Python shim does), prints its pid and waits to be killed.
func TestServeParentDeathHelper(t *testing.T) {
	spec := os.Getenv(pdeathHelperEnv)
	if spec == "" {
		return // only as the helper process
	}
	lines := strings.Split(spec, "\n")
	logPath, argv := lines[0], lines[1:]
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// The parent-death signal fires when the forking thread ends: keep it.
	runtime.LockOSThread()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"GODEBUG=", "PATH=" + os.Getenv("PATH")} // sysmon.Setting added by serve's re-exec
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("serverpid=" + strconv.Itoa(cmd.Process.Pid) + "\n")
	time.Sleep(time.Hour) // killed by the test
}

// gonePid reports whether pid no longer runs (a zombie nobody reaps counts
// as gone).
func gonePid(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z")
}

// TestServeParentDeathSignalSurvivesReexec: a `durusbdb serve` started with
// a parent-death signal (the Python shim's PR_SET_PDEATHSIG) and no
// --parent-pid re-executes itself to keep sysmon awake, and still stops
// when its parent is killed with SIGKILL. The re-exec ran on another
// thread than the one holding the setting and dropped it: the server
// outlived its parent for good.
func TestServeParentDeathSignalSurvivesReexec(t *testing.T) {
	bin := cliBinary(t)
	dir := t.TempDir()
	addr := filepath.Join(dir, "durus.sock")
	logPath := filepath.Join(dir, "serve.log")
	argv := []string{bin, "serve", "--dir", filepath.Join(dir, "db"), "--create", "--address", addr}
	helper := exec.Command(os.Args[0], "-test.run=^TestServeParentDeathHelper$")
	helper.Env = append(os.Environ(), pdeathHelperEnv+"="+logPath+"\n"+strings.Join(argv, "\n"))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		helper.Process.Kill()
		helper.Wait()
	}()
	pid := 0
	sc := bufio.NewScanner(out)
	for pid == 0 && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "serverpid="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatalf("the helper printed no server pid (%v)", sc.Err())
	}
	defer syscall.Kill(pid, syscall.SIGKILL) // whatever happens below
	logText := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	// Serving after its re-exec: the start-up line says sysmon is kept awake.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logText(), "sysmon_awake=true") {
		if gonePid(pid) || time.Now().After(deadline) {
			t.Fatalf("server %d did not start serving after its re-exec; log:\n%s", pid, logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	deadline = time.Now().Add(15 * time.Second)
	for !gonePid(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("server %d still running 15 s after its parent was killed with SIGKILL; log:\n%s", pid, logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// On the signal, once: a clean shutdown. The kernel sends the
	// parent-death signal again each time the server is handed to another
	// dying thread of its parent (this helper has several), and serve takes
	// a second SIGTERM for "exit now, without a clean shutdown".
	log := logText()
	if !strings.Contains(log, "terminated signal received") || !strings.Contains(log, "database closed") ||
		strings.Contains(log, "second signal") {
		t.Fatalf("server %d did not stop cleanly on its parent-death signal; log:\n%s", pid, log)
	}
}
