package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv, set in a re-executed test binary, makes TestMain play a tiny
// server instead of running tests: it logs, listens on the unix socket
// the variable names, exits 0 on a 'Q' byte and 3 on SIGTERM. A TestMain
// dispatch, so the child is not listed as a (passing) test.
const childEnv = "PROC_TEST_CHILD_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(childEnv); sock != "" {
		os.Exit(child(sock))
	}
	os.Exit(m.Run())
}

func child(sock string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("child: starting")
	if os.Getenv("PROC_TEST_CHILD_FAIL") != "" {
		fmt.Println("child: failing at start-up")
		return 2
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("child: serving")
	fmt.Printf("time=now level=INFO msg=serving address=%s readonly=false\n", sock)
	quit := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				if n, _ := c.Read(b[:]); n == 1 && b[0] == 'Q' {
					close(quit)
				}
			}()
		}
	}()
	select {
	case <-quit:
		return 0
	case <-term:
		return 3
	}
}

// startChild runs this test binary as a child server on a fresh socket.
func startChild(t *testing.T, env ...string) (*Process, string) {
	t.Helper()
	return startChildLog(t, "", env...)
}

// startChildLog is startChild with its output appended to logPath ("": a
// fresh log).
func startChildLog(t *testing.T, logPath string, env ...string) (*Process, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := StartT(t, Options{LogPath: logPath, Env: append(env, childEnv+"="+sock)}, exe)
	return p, sock
}

// TestServingAddr: ServingAddr returns the address of the process's own
// serving line, not one an earlier process appended to the same log, and
// fails at once, with ErrExited, for a process that ends before serving.
func TestServingAddr(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "shared.log")
	p1, sock1 := startChildLog(t, logPath)
	if addr, err := p1.ServingAddr(30 * time.Second); err != nil || addr != sock1 {
		t.Fatalf("first child: ServingAddr %q, %v; want %q", addr, err, sock1)
	}
	if err := p1.Quit(sock1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p2, sock2 := startChildLog(t, logPath)
	if addr, err := p2.ServingAddr(30 * time.Second); err != nil || addr != sock2 {
		t.Fatalf("second child on the same log: ServingAddr %q, %v; want its own %q, not %q", addr, err, sock2, sock1)
	}
	p3, _ := startChildLog(t, logPath, "PROC_TEST_CHILD_FAIL=1")
	if _, err := p3.ServingAddr(time.Minute); !errors.Is(err, ErrExited) {
		t.Fatalf("a child that fails at start-up: %v, want ErrExited", err)
	}
}

// TestServingAddrLine: the address ends at the next field or the end of
// its line; a line not yet ended does not count.
func TestServingAddrLine(t *testing.T) {
	for _, c := range []struct{ log, want string }{
		{"x\ntime=t level=INFO msg=serving address=127.0.0.1:4242 readonly=false tls=false\n", "127.0.0.1:4242"},
		{"msg=serving address=[::1]:1\n", "[::1]:1"},
		{"msg=serving address=127.0.0.1:42", ""},
		{"msg=\"durusbdb serve\" address=127.0.0.1:0\n", ""},
		{"", ""},
	} {
		if got := servingAddr([]byte(c.log)); got != c.want {
			t.Errorf("servingAddr(%q) = %q, want %q", c.log, got, c.want)
		}
	}
}

// TestQuit: WaitReady sees the socket, Quit stops the child with status 0,
// and the log holds its output.
func TestQuit(t *testing.T) {
	p, sock := startChild(t)
	if err := p.WaitReady(sock, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Quit(sock, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || p.Err() != nil {
		t.Fatalf("after Quit: exited %v, err %v", p.Exited(), p.Err())
	}
	if got := p.LogTail(2); !strings.HasPrefix(got, "child: serving\n") {
		t.Fatalf("LogTail(1) = %q", got)
	}
}

// TestStopAndKill: Stop ends the child with SIGTERM (its exit status 3),
// Kill with SIGKILL.
func TestStopAndKill(t *testing.T) {
	p, sock := startChild(t)
	if err := p.WaitReady(sock, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := p.Stop(30 * time.Second); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Stop: %v, want exit status 3", err)
	}
	p2, sock2 := startChild(t)
	if err := p2.WaitReady(sock2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p2.Kill(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(p2.Err()), "killed") {
		t.Fatalf("after Kill: %v", p2.Err())
	}
	if err := p2.Wait(time.Millisecond); err == nil || errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait after Kill: %v", err)
	}
}

// TestWaitReadyExited: a child that dies at start-up makes WaitReady fail
// at once with ErrExited and the end of the log, not after the timeout.
func TestWaitReadyExited(t *testing.T) {
	p, sock := startChild(t, "PROC_TEST_CHILD_FAIL=1")
	start := time.Now()
	err := p.WaitReady(sock, time.Minute)
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "failing at start-up") {
		t.Fatalf("WaitReady: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatalf("WaitReady took %v", time.Since(start))
	}
}

// TestWaitTimeout: Wait on a running process returns ErrTimeout.
func TestWaitTimeout(t *testing.T) {
	p, _ := startChild(t)
	if err := p.Wait(10 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Wait: %v", err)
	}
}

// TestBuilder builds a command once per (package, tags).
func TestBuilder(t *testing.T) {
	var b Builder
	defer b.Close()
	const pkg = "github.com/durusbdb/durusbdb/internal/proc/testdata/hello"
	p1, err := b.Build(context.Background(), pkg, "")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.Build(context.Background(), pkg, "")
	if err != nil || p2 != p1 {
		t.Fatalf("second build: %q %v, want %q", p2, err, p1)
	}
	p3, err := b.Build(context.Background(), pkg, "other")
	if err != nil || p3 == p1 {
		t.Fatalf("build with tags: %q %v", p3, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	p, err := Start(Options{LogPath: out}, p1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(time.Minute); err != nil || p.Log() != "hello\n" {
		t.Fatalf("built binary: %v, output %q", err, p.Log())
	}
	dir := filepath.Dir(p1)
	b.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Close left %s: %v", dir, err)
	}
}

// TestTail: the last lines of a log.
func TestTail(t *testing.T) {
	for in, want := range map[string]string{"": "", "a": "a", "a\nb\nc\n": "b\nc", "a\nb": "a\nb"} {
		if got := Tail([]byte(in), 2); got != want {
			t.Errorf("Tail(%q, 2) = %q, want %q", in, got, want)
		}
	}
}
