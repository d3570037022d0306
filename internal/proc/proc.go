// Package proc is the one process harness of the repository: the tests that
// run a real `durusbdb serve` (server CLI tests, recovery, the kill -9
// crash harness) and the benchmark suite all build the binary, start it
// with its output captured in a log file, poll until it serves, kill it
// with SIGKILL or stop it with Durus 'Q' or SIGTERM, and show the end of
// its log, through this package. Every wait is bounded; StartT ends the
// process at the test's cleanup, so no test leaks one.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// ErrTimeout is returned (wrapped) when a bounded wait runs out.
var ErrTimeout = errors.New("proc: timed out")

// ErrExited is returned (wrapped) by WaitReady when the process ends
// before it serves.
var ErrExited = errors.New("proc: process exited")

// Builder builds Go commands once each and keeps them in one temporary
// directory until Close; a test binary holds one for all its tests. It is
// safe for concurrent use; the zero value is ready.
type Builder struct {
	mu    sync.Mutex
	dir   string
	built map[string]*build
}

// build is one (package, tags) build, done once.
type build struct {
	once sync.Once
	path string
	err  error
}

// Build compiles the main package pkg (an import path, e.g.
// github.com/durusbdb/durusbdb/cmd/durusbdb) with the build tags tags
// ("" for none) and returns the binary's path; later calls with the same
// arguments return the same binary.
func (b *Builder) Build(ctx context.Context, pkg, tags string) (string, error) {
	b.mu.Lock()
	if b.built == nil {
		b.built = map[string]*build{}
	}
	if b.dir == "" {
		d, err := os.MkdirTemp("", "durusbdb-proc-*")
		if err != nil {
			b.mu.Unlock()
			return "", fmt.Errorf("proc: build %s: %w", pkg, err)
		}
		b.dir = d
	}
	key := pkg + "\x00" + tags
	bd := b.built[key]
	if bd == nil {
		bd = &build{path: filepath.Join(b.dir, fmt.Sprintf("%s-%d", filepath.Base(pkg), len(b.built)))}
		b.built[key] = bd
	}
	b.mu.Unlock()
	bd.once.Do(func() {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", tags, "-o", bd.path, pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			bd.err = fmt.Errorf("proc: go build -tags %q %s: %w\n%s", tags, pkg, err, out)
		}
	})
	return bd.path, bd.err
}

// Close removes every binary built.
func (b *Builder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir == "" {
		return nil
	}
	err := os.RemoveAll(b.dir)
	b.dir, b.built = "", nil
	return err
}

// Options are how Start runs a process.
type Options struct {
	// LogPath receives stdout and stderr, appended (required).
	LogPath string
	// Stdout and Stderr, if set, receive the process's stdout and stderr
	// instead of the log.
	Stdout, Stderr io.Writer
	// Env is added to the environment of this process.
	Env []string
}

// Process is one started process.
type Process struct {
	argv     []string
	cmd      *exec.Cmd
	started  time.Time
	logPath  string
	logStart int64 // size of the log when the process started: its own lines follow
	done     chan struct{}
	err      error // valid after done
}

// Start runs argv with its output appended to opts.LogPath; it does not
// wait for anything (see WaitReady).
func Start(opts Options, argv ...string) (*Process, error) {
	if len(argv) == 0 || opts.LogPath == "" {
		return nil, fmt.Errorf("proc: start %q: need a command and a log path", argv)
	}
	lf, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", argv[0], err)
	}
	defer lf.Close()
	var logStart int64
	if fi, err := lf.Stat(); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if opts.Stdout != nil {
		cmd.Stdout = opts.Stdout
	}
	if opts.Stderr != nil {
		cmd.Stderr = opts.Stderr
	}
	if opts.Env != nil {
		cmd.Env = append(os.Environ(), opts.Env...)
	}
	p := &Process{argv: argv, cmd: cmd, logPath: opts.LogPath, logStart: logStart, done: make(chan struct{}), started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", strings.Join(argv, " "), err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Started returns when the process was started.
func (p *Process) Started() time.Time { return p.started }

// LogPath returns the file the process writes its output to.
func (p *Process) LogPath() string { return p.logPath }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the process ended (nil for status 0); valid once Done
// is closed.
func (p *Process) Err() error { return p.err }

// Signal sends sig to the process; for SIGSTOP it returns once every
// thread is stopped (package-level Signal).
func (p *Process) Signal(sig os.Signal) error {
	if sig == syscall.SIGSTOP {
		return Signal(p.Pid(), syscall.SIGSTOP)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("proc: signal %v to %s: %w", sig, p.name(), err)
	}
	return nil
}

func (p *Process) name() string { return fmt.Sprintf("%s (pid %d)", filepath.Base(p.argv[0]), p.Pid()) }

// Wait waits up to timeout for the exit and returns how it ended, or an
// ErrTimeout error (the process still runs).
func (p *Process) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("%w: %s still running after %v", ErrTimeout, p.name(), timeout)
	}
}

// Kill sends SIGKILL and waits up to timeout for the exit; it returns an
// error only if the process is still there.
func (p *Process) Kill(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	if err := p.Wait(timeout); errors.Is(err, ErrTimeout) {
		return err
	}
	return nil
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills the
// process. It returns how the process ended after SIGTERM, or an
// ErrTimeout error if it had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.Wait(grace)
	if errors.Is(err, ErrTimeout) {
		p.Kill(grace)
	}
	return err
}

// Quit asks the server at addr to stop with the Durus 'Q' request and
// waits up to timeout for the exit; it returns how the process ended
// (killing it, with an ErrTimeout error, if it did not). The error
// carries the end of the log.
func (p *Process) Quit(addr string, timeout time.Duration) error {
	c, err := wire.Dial(addr, timeout)
	if err == nil {
		err = c.Quit()
		defer c.NetConn().Close()
	}
	if err != nil {
		return fmt.Errorf("proc: Q to %s: %w", p.name(), err)
	}
	if err := p.Wait(timeout); err != nil {
		if errors.Is(err, ErrTimeout) {
			p.Kill(timeout)
		}
		return fmt.Errorf("proc: %s after Q: %w\n%s", p.name(), err, p.LogTail(40))
	}
	return nil
}

// WaitReady polls addr (as wire.Dial takes it) until it accepts a
// connection. It fails early, with an ErrExited error and the end of the
// log, if the process ends first, and with an ErrTimeout error after
// timeout.
func (p *Process) WaitReady(addr string, timeout time.Duration) error {
	return p.WaitUntil(timeout, "accept connections on "+addr, func() bool {
		c, err := wire.Dial(addr, time.Second)
		if err != nil {
			return false
		}
		c.NetConn().Close()
		return true
	})
}

// servingKey starts the address field of the line a server logs once its
// Durus listener is bound (server.Serve: msg=serving address=HOST:PORT).
const servingKey = "msg=serving address="

// ServingAddr waits until this process has logged that it serves and
// returns the address it named. A server started with --port 0 binds a
// port of its own choosing, so no other process can take that port
// between its choice and the bind, as one can when a test picks a free
// port and passes it on. Only the lines this process wrote count (a log
// appended by earlier processes is skipped). It fails as WaitUntil does.
func (p *Process) ServingAddr(timeout time.Duration) (string, error) {
	var addr string
	err := p.WaitUntil(timeout, "log its serving address", func() bool {
		addr = servingAddr(p.ownLog())
		return addr != ""
	})
	return addr, err
}

// ownLog returns what this process has written to its log so far.
func (p *Process) ownLog() []byte {
	b, _ := os.ReadFile(p.logPath)
	if int64(len(b)) < p.logStart {
		return nil
	}
	return b[p.logStart:]
}

// servingAddr returns the address of the first complete serving line of
// log, or "".
func servingAddr(log []byte) string {
	i := bytes.Index(log, []byte(servingKey))
	if i < 0 {
		return ""
	}
	rest := log[i+len(servingKey):]
	end := bytes.IndexByte(rest, '\n')
	if end < 0 {
		return "" // the line is still being written
	}
	if sp := bytes.IndexByte(rest[:end], ' '); sp >= 0 {
		end = sp
	}
	return string(rest[:end])
}

// WaitUntil polls cond until it holds, as WaitReady does for a port: an
// ErrExited error if the process ends first, ErrTimeout after timeout.
// what names the condition in the error.
func (p *Process) WaitUntil(timeout time.Duration, what string, cond func() bool) error {
	var exited bool
	ok := WaitFor(timeout, func() bool {
		if cond() {
			return true
		}
		exited = p.Exited()
		return exited
	})
	switch {
	case exited:
		return fmt.Errorf("%w: %s ended (%v) before it would %s; end of its log:\n%s", ErrExited, p.name(), p.err, what, p.LogTail(30))
	case !ok:
		return fmt.Errorf("%w: %s did not %s within %v; end of its log:\n%s", ErrTimeout, p.name(), what, timeout, p.LogTail(30))
	}
	return nil
}

// Log returns everything the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// LogTail returns the last n lines of the log.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	return Tail(b, n)
}

// Tail returns the last n lines of b.
func Tail(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	i := len(b)
	for ; n > 0 && i > 0; n-- {
		i = bytes.LastIndexByte(b[:i], '\n')
		if i < 0 {
			i = 0
			break
		}
	}
	return strings.TrimPrefix(string(b[i:]), "\n")
}

// WaitFor polls cond until it holds (true) or timeout passes (false):
// testwait.Poll, the one polling loop, for callers outside tests.
func WaitFor(timeout time.Duration, cond func() bool) bool {
	return testwait.Poll(timeout, cond)
}
