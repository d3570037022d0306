package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// C1: the default address is 127.0.0.1:2972 (the same code path serves an
// ephemeral port in the tests).
func TestDefaultEndpoint(t *testing.T) {
	n, a := ListenConfig{Port: DefaultPort}.Endpoint()
	if n != "tcp" || a != "127.0.0.1:2972" {
		t.Fatalf("default endpoint %s %s", n, a)
	}
	n, a = ListenConfig{Host: "::1", Port: 1}.Endpoint()
	if n != "tcp" || a != "[::1]:1" {
		t.Fatalf("IPv6 endpoint %s %s", n, a)
	}
	n, a = ListenConfig{Address: "@a@b", Port: 5}.Endpoint()
	if n != "unix" || a != "\x00a\x00b" {
		t.Fatalf("abstract endpoint %s %q", n, a)
	}
	ln, err := Listen(context.Background(), ListenConfig{Port: 0, IgnoreSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveOn(t, Config{}, newMemStore(), ln)
	c := ts.dial(t)
	c.send([]byte{'V'}, u32(1))
	c.expect(u32(1))
	// Port in use: a clear error.
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = Listen(context.Background(), ListenConfig{Port: port, IgnoreSystemd: true})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("second listen: %v", err)
	}
}

// C2, C3: unix socket mode 0600, removal at shutdown, stale vs live vs
// regular file.
func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "durus.sock")
	ln, err := Listen(context.Background(), ListenConfig{Address: path, IgnoreSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
	ts := serveOn(t, Config{}, newMemStore(), ln)
	c := ts.dial(t)
	if o := c.newOIDs(2); o[1] != 1 {
		t.Fatal(o)
	}
	// A live socket refuses a second server, naming the path.
	_, err = Listen(context.Background(), ListenConfig{Address: path, IgnoreSystemd: true})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another server") {
		t.Fatalf("live socket: %v", err)
	}
	ts.stop(t)
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file not removed at shutdown: %v", err)
	}

	// Stale socket: bound and closed without unlinking.
	fd, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	umask := 0o077
	ln, err = Listen(context.Background(), ListenConfig{Address: path, IgnoreSystemd: true, Umask: &umask})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode with --umask 077: %v", fi.Mode())
	}
	ln.Close()

	// A regular file (even empty) is never removed.
	reg := filepath.Join(dir, "file")
	os.WriteFile(reg, nil, 0o644)
	if _, err := Listen(context.Background(), ListenConfig{Address: reg, IgnoreSystemd: true}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := os.Stat(reg); err != nil {
		t.Fatal("regular file removed")
	}
	// Owner and group by number (our own).
	own := filepath.Join(dir, "own.sock")
	ln, err = Listen(context.Background(), ListenConfig{Address: own, Owner: strconv.Itoa(os.Getuid()), Group: strconv.Itoa(os.Getgid()), IgnoreSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := Listen(context.Background(), ListenConfig{Address: own, Owner: "no-such-user-xyz", IgnoreSystemd: true}); err == nil {
		t.Fatal("unknown owner accepted")
	}
}

// C4: abstract names; every '@' becomes NUL.
func TestAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@durusbdb-test@%d-%d", os.Getpid(), time.Now().UnixNano())
	lc := ListenConfig{Address: name, IgnoreSystemd: true}
	ln, err := Listen(context.Background(), lc)
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, Config{}, newMemStore(), ln)
	_, addr := lc.Endpoint()
	nc, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, nc: nc}
	c.send([]byte{'V'}, u32(1))
	c.expect(u32(1))
	// Stop (durus -s --stop) works on the same address.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, lc); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("unix", addr); err == nil {
		t.Fatal("still accepting after Stop")
	}
}

// C5: systemd socket activation, in a child process (LISTEN_PID must be the
// child's pid, which exec keeps).
func TestSystemdActivation(t *testing.T) {
	if os.Getenv("DURUSBDB_SYSTEMD_CHILD") == "1" {
		ln, err := Listen(context.Background(), ListenConfig{Port: 1}) // ignored
		if err != nil {
			fmt.Println("LISTEN-ERROR:", err)
			os.Exit(0)
		}
		fmt.Println("LISTENING:", ln.Addr().String())
		ln.Close()
		os.Exit(0)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	f, err := tcp.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run := func(fds string) string {
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" -test.run='^TestSystemdActivation$'`, os.Args[0])
		cmd.Env = append(os.Environ(), "DURUSBDB_SYSTEMD_CHILD=1", "LISTEN_FDS="+fds)
		cmd.ExtraFiles = []*os.File{f}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run("1"); !strings.Contains(out, "LISTENING: "+tcp.Addr().String()) {
		t.Fatalf("LISTEN_FDS=1: %s", out)
	}
	if out := run("2"); !strings.Contains(out, "LISTEN-ERROR:") || !strings.Contains(out, "LISTEN_FDS=2") {
		t.Fatalf("LISTEN_FDS=2: %s", out)
	}
	if out := run("x"); !strings.Contains(out, "LISTEN-ERROR:") {
		t.Fatalf("LISTEN_FDS=x: %s", out)
	}
}

// TestUnixAddressTooLong: a unix socket path or abstract name longer than
// the kernel's sun_path holds is refused with its length and the limit,
// not with bind's bare "invalid argument".
func TestUnixAddressTooLong(t *testing.T) {
	long := strings.Repeat("s", maxUnixAddress+1)
	for _, addr := range []string{filepath.Join(t.TempDir(), long), "@" + long} {
		_, err := Listen(context.Background(), ListenConfig{Address: addr, IgnoreSystemd: true})
		if err == nil || !strings.Contains(err.Error(), "at most 107") {
			t.Errorf("listen on a %d-byte address: %v; want it refused naming the limit", len(addr), err)
		}
	}
}
