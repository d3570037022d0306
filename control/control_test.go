package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/mounttest"
)

// childEnv makes the test binary a control client (TestMain): it runs
// Run against the directory named by the variable and prints the result.
const childEnv = "DURUSBDB_CONTROL_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		var out, errb bytes.Buffer
		ex, err := Run(context.Background(), dir, Request{Command: "stats"}, &out, &errb)
		fmt.Printf("uid=%d code=%d refused=%v err=%v out=%q\n", os.Getuid(), ex.Code, errors.Is(err, ErrRefused), err, out.String())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPeerAllowed(t *testing.T) {
	for _, c := range []struct {
		peer, server uint32
		ok           bool
	}{{1000, 1000, true}, {0, 1000, true}, {65534, 1000, false}, {1001, 1000, false}, {0, 0, true}, {65534, 0, false}} {
		if got := PeerAllowed(c.peer, c.server); got != c.ok {
			t.Errorf("PeerAllowed(%d, %d) = %v, want %v", c.peer, c.server, got, c.ok)
		}
	}
}

// echoHandler writes to both streams, sends one file, and exits 3.
func echoHandler(calls *atomic.Int64, file string) Handler {
	return func(ctx context.Context, req Request, r *Response) Exit {
		calls.Add(1)
		fmt.Fprintf(r.Stdout(), "command %s args %s env %s\n", req.Command, strings.Join(req.Args, ","), strings.Join(req.Env, ","))
		fmt.Fprintln(r.Stderr(), "progress line")
		if file != "" {
			if err := r.SendFile(ctx, file, FileHeader{Path: req.Args[0], Mode: 0o640}); err != nil {
				return Exit{Code: 1, Error: err.Error()}
			}
		}
		return Exit{Code: 3, Error: "3 problems"}
	}
}

func TestRunStreamsOutputFilesAndExit(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "payload")
	payload := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB: several frames
	if err := os.WriteFile(src, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	s, err := Listen(dir, echoHandler(&calls, src), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Lstat(filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	out := filepath.Join(t.TempDir(), "sub", "out.durus")
	var stdout, stderr bytes.Buffer
	ex, err := Run(context.Background(), dir, Request{Command: "export", Args: []string{out}, Env: []string{"DURUSBDB_X=1"}}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Code != 3 || ex.Error != "3 problems" {
		t.Fatalf("exit %+v", ex)
	}
	if stdout.String() != "command export args "+out+" env DURUSBDB_X=1\n" || stderr.String() != "progress line\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("received file: %d bytes (want %d), %v", len(got), len(payload), err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o640 {
		t.Fatalf("received file mode %v", fi.Mode())
	}
	// A second run must not replace the file (Replace false).
	if err := os.WriteFile(out, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), dir, Request{Command: "export", Args: []string{out}}, io.Discard, io.Discard)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("second run over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep" {
		t.Fatalf("existing file replaced: %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}
	if _, err := Run(context.Background(), dir, Request{Command: "stats"}, io.Discard, io.Discard); !errors.Is(err, ErrNoServer) {
		t.Fatalf("run after Close: %v, want ErrNoServer", err)
	}
}

// TestStaleSocketReplaced: a socket file nobody answers on (a server
// killed with SIGKILL leaves one) is replaced; a live one is not.
func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left: %v", err)
	}
	if _, err := Run(context.Background(), dir, Request{Command: "stats"}, io.Discard, io.Discard); !errors.Is(err, ErrNoServer) {
		t.Fatalf("run on a stale socket: %v, want ErrNoServer", err)
	}
	os.Mkdir(filepath.Join(dir, TempPrefix+"old"), 0o700)
	var calls atomic.Int64
	s, err := Listen(dir, echoHandler(&calls, ""), nil)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, TempPrefix+"old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old staging directory kept: %v", err)
	}
	if ex, err := Run(context.Background(), dir, Request{Command: "stats"}, io.Discard, io.Discard); err != nil || ex.Code != 3 {
		t.Fatalf("run: %+v %v", ex, err)
	}
	if _, err := Listen(dir, echoHandler(&calls, ""), nil); err == nil || !strings.Contains(err.Error(), "another server answers") {
		t.Fatalf("second listener on a live socket: %v", err)
	}
}

// longDir returns a directory whose control socket path does not fit in
// sun_path.
func longDir(t *testing.T) string {
	dir := t.TempDir()
	for len(filepath.Join(dir, SocketName)) < maxSunPath+10 {
		dir = filepath.Join(dir, "a-rather-long-directory-name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAbstractFallback(t *testing.T) {
	dir := longDir(t)
	addr, err := SocketAddr(dir)
	if err != nil || !strings.HasPrefix(addr, "@durusbdb-control-") || len(addr) >= maxSunPath {
		t.Fatalf("address %q, %v", addr, err)
	}
	if short, _ := SocketAddr(t.TempDir()); !strings.HasSuffix(short, "/"+SocketName) {
		t.Fatalf("short directory address %q", short)
	}
	var calls atomic.Int64
	s, err := Listen(dir, echoHandler(&calls, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	if ex, err := Run(context.Background(), dir, Request{Command: "stats"}, &out, io.Discard); err != nil || ex.Code != 3 {
		t.Fatalf("run: %+v %v", ex, err)
	}
}

// TestOtherUserRefused runs a client as uid 65534 (setpriv; needs root)
// against an abstract socket (no file mode in the way): the server's
// SO_PEERCRED check must refuse it without running the handler.
func TestOtherUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		mounttest.Unavailable(t, "not root: a client cannot be run as another user here (CI runs as root)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux, installed by scripts/install-deps.sh) not found: %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the test binary that uid 65534 can execute.
	bindir := t.TempDir()
	for d := bindir; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	bin := filepath.Join(bindir, "control.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := longDir(t)
	var calls atomic.Int64
	s, err := Listen(dir, echoHandler(&calls, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run := func(args ...string) string {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	other := run(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin)
	if !strings.Contains(other, "uid=65534 ") || !strings.Contains(other, "refused=true") || !strings.Contains(other, `out=""`) {
		t.Fatalf("client as uid 65534: %s", other)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("handler ran %d times for another user", n)
	}
	same := run(bin)
	if !strings.Contains(same, "code=3") || !strings.Contains(same, "refused=false") {
		t.Fatalf("client as the server's user: %s", same)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times for the server's user, want 1", n)
	}
}

// TestCloseWithAStalledClient: a client that sends a request and stops
// reading while the server writes cannot hold up Close (the server's
// shutdown) beyond a generous bound.
func TestCloseWithAStalledClient(t *testing.T) {
	dir := t.TempDir()
	writing := make(chan struct{})
	s, err := Listen(dir, func(ctx context.Context, req Request, r *Response) Exit {
		close(writing)
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for i := 0; i < 1024; i++ { // 1 GiB: far beyond the socket buffers
			if _, err := r.Stdout().Write(chunk); err != nil {
				return Exit{Code: 1, Error: err.Error()}
			}
		}
		return Exit{}
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", filepath.Join(dir, SocketName))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"command":"stats"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	<-writing
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10 s while a client stopped reading")
	}
}

// A received file is written to a flocked temporary file; starting to
// receive one removes those a killed client left for the same path (they
// are unlocked), never one a running reception holds.
func TestCreateOutRemovesKilledParts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.tar.sz")
	stale := filepath.Join(dir, ".db.tar.sz.part-111")
	if err := os.WriteFile(stale, []byte("half a transfer"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	running, err := createOut(FileHeader{Path: path, Mode: 0o600}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer running.abort()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the part file of a killed reception is still there: %v", err)
	}
	if !strings.Contains(logs.String(), stale) {
		t.Fatalf("its removal was not logged:\n%s", logs.String())
	}
	other, err := createOut(FileHeader{Path: path, Mode: 0o600, Replace: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer other.abort()
	if _, err := os.Stat(running.tmp); err != nil {
		t.Fatalf("a second reception removed the part file of a running one: %v", err)
	}
}
