package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
)

// opsProc is a `durusbdb serve` child process whose log goes where the
// test says (a --log-file, or stderr given), not into a buffer.
type opsProc struct {
	*proc.Process
	sock string
}

// startOps starts serve on a unix socket in a new directory with extra
// flags, stdout and stderr going to stderr if not nil; the caller waits
// for it to serve.
func startOps(t *testing.T, bin string, stderr *os.File, extra ...string) *opsProc {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	args := append([]string{bin, "serve", "--dir", t.TempDir(), "--create", "--address", sock}, extra...)
	var opts proc.Options
	if stderr != nil {
		opts.Stdout, opts.Stderr = stderr, stderr
	}
	return &opsProc{Process: proc.StartT(t, opts, args...), sock: sock}
}

// alive fails t if the process has exited.
func (p *opsProc) alive(t *testing.T) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("server exited: %v", p.Err())
	}
}

// roundTrip commits a root and loads it back over a new connection.
func (p *opsProc) roundTrip(t *testing.T, text string) {
	t.Helper()
	p.alive(t)
	c := dialUnix(t, p.sock)
	defer c.nc.Close()
	c.sync()
	c.newOIDs(1) // oid 0 the first time: a commit may store only handed-out oids
	if _, st := c.commit(rec(0, text)); st != 'O' {
		t.Fatalf("commit: %q", st)
	}
	if st, _ := c.load(0); st != 'O' {
		t.Fatalf("load: %q", st)
	}
}

// stop sends SIGTERM and wants a clean exit (status 0) within 15 s.
func (p *opsProc) stop(t *testing.T) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(15 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// SIGHUP reopens the log file (logrotate renames it, then signals) and
// never stops the server; --log-file and the Durus spelling --logfile both
// work.
func TestCLISIGHUPReopensLog(t *testing.T) {
	bin := buildCLI(t)
	for _, flag := range []string{"--log-file", "--logfile"} {
		t.Run(flag, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "durusbdb.log")
			p := startOps(t, bin, nil, flag, logPath)
			waitFor(t, 20*time.Second, "serving in the log file", func() bool {
				p.alive(t)
				return strings.Contains(readFile(logPath), "msg=serving")
			})
			p.roundTrip(t, "before")

			rotated := logPath + ".1"
			if err := os.Rename(logPath, rotated); err != nil {
				t.Fatal(err)
			}
			if err := p.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "a new log file at the path", func() bool {
				p.alive(t)
				return strings.Contains(readFile(logPath), "log file reopened")
			})
			p.roundTrip(t, "after")
			// A second SIGHUP with nothing renamed: still serving, same file.
			if err := p.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the second reopen", func() bool {
				p.alive(t)
				return strings.Count(readFile(logPath), "log file reopened") == 2
			})
			p.roundTrip(t, "again")
			p.stop(t)
			if !strings.Contains(readFile(logPath), "database closed") {
				t.Errorf("the shutdown is not in the new log file:\n%s", readFile(logPath))
			}
			if old := readFile(rotated); !strings.Contains(old, "msg=serving") || strings.Contains(old, "database closed") {
				t.Errorf("the rotated file:\n%s", old)
			}
		})
	}
}

// A server whose stderr is a pipe nobody reads any more keeps serving
// (no death by SIGPIPE), also after a SIGHUP with no log file, and still
// shuts down cleanly.
func TestCLIClosedStderr(t *testing.T) {
	bin := buildCLI(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := startOps(t, bin, w)
	w.Close() // the child holds the only write end
	served := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "msg=serving") {
				served <- true
				return
			}
		}
		served <- false
	}()
	select {
	case ok := <-served:
		if !ok {
			t.Fatalf("the log ended before serving")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not start")
	}
	r.Close() // now every log line meets a closed pipe
	for i := range 3 {
		p.roundTrip(t, strings.Repeat("x", i+1)) // each connection logs opened/closed lines
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.roundTrip(t, "after SIGHUP")
	p.stop(t)
}

// The Docker health check (docker/healthcheck.py) asks /healthz or
// /readyz on the metrics listener; it succeeds against a running server
// and writes nothing to the server's log (the old Durus-protocol probe
// wrote two INFO lines per run).
func TestCLIHealthCheckScript(t *testing.T) {
	bin := buildCLI(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 (used by the Docker image's health check) not found")
	}
	script, err := filepath.Abs("../docker/healthcheck.py")
	if err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0") // a free port for --metrics
	if err != nil {
		t.Fatal(err)
	}
	maddr := busy.Addr().String()
	busy.Close()
	logPath := filepath.Join(t.TempDir(), "durusbdb.log")
	p := startOps(t, bin, nil, "--log-file", logPath, "--metrics", maddr)
	waitFor(t, 20*time.Second, "serving", func() bool {
		p.alive(t)
		return strings.Contains(readFile(logPath), "msg=serving")
	})
	before := readFile(logPath)
	for _, path := range []string{"/healthz", "/readyz"} {
		for range 3 {
			out, err := exec.Command(py, script, "http://"+maddr+path).CombinedOutput()
			if err != nil {
				t.Fatalf("healthcheck %s: %v\n%s", path, err, out)
			}
		}
	}
	if after := readFile(logPath); after != before {
		t.Errorf("health checks wrote to the log:\n%s", strings.TrimPrefix(after, before))
	}
	// Shutting down or gone: the check fails.
	p.stop(t)
	if err := exec.Command(py, script, "http://"+maddr+"/healthz").Run(); err == nil {
		t.Errorf("healthcheck succeeded with the server stopped")
	}
	resp, err := http.Get("http://" + maddr + "/healthz")
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Errorf("metrics listener still answering after exit")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("after exit: %v", err)
	}
}

// httpStatus GETs url and returns the status code and body.
func httpStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A reserve larger than the free space: a warning at start naming
// --min-free-space, /readyz 503 with the reason, /healthz 200.
func TestCLILowSpaceWarning(t *testing.T) {
	bin := buildCLI(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := busy.Addr().String()
	busy.Close()
	logPath := filepath.Join(t.TempDir(), "durusbdb.log")
	p := startOps(t, bin, nil, "--log-file", logPath, "--metrics", maddr, "--min-free-space", "1000000000GiB")
	waitFor(t, 20*time.Second, "serving", func() bool {
		p.alive(t)
		return strings.Contains(readFile(logPath), "msg=serving")
	})
	var warned bool
	for _, line := range strings.Split(readFile(logPath), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "free space is below the reserve") &&
			strings.Contains(line, "--min-free-space") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no WARN line about the reserve:\n%s", readFile(logPath))
	}
	if code, body := httpStatus(t, "http://"+maddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "--min-free-space") {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, body := httpStatus(t, "http://"+maddr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}
	p.stop(t)
}
