package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
)

// procs tracks every process the suite started, so that all of them are
// ended on every exit path; their ids are also written to a pid file that
// scripts/bench.sh's trap reads if the driver itself dies.
type procs struct {
	mu      sync.Mutex
	live    map[int]*proc
	pidFile string
}

// proc is one started server process.
type proc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	started time.Time
	logPath string
}

func newProcs(pidFile string) *procs {
	return &procs{live: map[int]*proc{}, pidFile: pidFile}
}

// start runs argv with stdout and stderr appended to logPath.
func (ps *procs) start(name, logPath string, env []string, argv ...string) (*proc, error) {
	lf, err := openLog(logPath, argv)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	p, err := ps.launch(name, logPath, cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// openLog opens logPath for appending and writes a line naming argv.
func openLog(logPath string, argv []string) (*os.File, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "### %s: %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(argv, " "))
	return lf, nil
}

// launch starts cmd and tracks it (pid file, stopAll) until it exits.
func (ps *procs) launch(name, logPath string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logPath: logPath, started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ps.mu.Lock()
	ps.live[cmd.Process.Pid] = p
	ps.writePids()
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// writePids rewrites the pid file; ps.mu is held.
func (ps *procs) writePids() {
	if ps.pidFile == "" {
		return
	}
	var b strings.Builder
	for pid := range ps.live {
		fmt.Fprintln(&b, pid)
	}
	os.WriteFile(ps.pidFile, []byte(b.String()), 0o644)
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace for the exit, then SIGKILL.
func (ps *procs) stop(p *proc, grace time.Duration) {
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	ps.mu.Lock()
	delete(ps.live, p.pid())
	ps.writePids()
	ps.mu.Unlock()
}

// stopAll ends every process still running.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	var all []*proc
	for _, p := range ps.live {
		all = append(all, p)
	}
	ps.mu.Unlock()
	for _, p := range all {
		ps.stop(p, 12*time.Second)
	}
}

// waitPort waits until addr accepts connections, the process exits, or
// timeout passes.
func waitPort(p *proc, addr string, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s (%v); log %s", p.name, addr, p.err, p.logPath)
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s did not listen on %s within %v; log %s", p.name, addr, timeout, p.logPath)
}

// firstLoad returns the time from the process start to the first 'O'
// reply to L oid, polling at most until timeout.
func firstLoad(p *proc, addr string, oid uint64, timeout time.Duration) (time.Duration, error) {
	end := p.started.Add(timeout)
	for time.Now().Before(end) {
		if p.exited() {
			return 0, fmt.Errorf("%s exited before serving (%v); log %s", p.name, p.err, p.logPath)
		}
		c, err := gen.Dial(addr)
		if err != nil {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		c.NetConn().SetDeadline(end)
		st, err := c.LoadStatus(oid)
		c.Close()
		if err == nil && st == 'O' {
			return time.Since(p.started), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no record for oid %d within %v; log %s", p.name, oid, timeout, p.logPath)
}

// memInfo is a process's memory from /proc/PID/status, in bytes.
type memInfo struct {
	rss, hwm int64 // VmRSS, VmHWM
	anon     int64 // RssAnon: heap, stacks, private memory
	file     int64 // RssFile + RssShmem: mapped files and shared regions (page cache)
}

// memStatus reads the memory figures of pid from /proc.
func memStatus(pid int) (m memInfo, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			m.rss = v << 10
		case "VmHWM:":
			m.hwm = v << 10
		case "RssAnon:":
			m.anon = v << 10
		case "RssFile:", "RssShmem:":
			m.file += v << 10
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, sc.Err()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// runCmd runs argv to completion within timeout and returns its stdout;
// stderr goes to logPath. The process is tracked like a server, so that
// stopAll (and the calling script's trap) ends it too.
func (ps *procs) runCmd(timeout time.Duration, logPath string, argv ...string) (string, time.Duration, error) {
	lf, err := openLog(logPath, argv)
	if err != nil {
		return "", 0, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, lf
	p, err := ps.launch(filepath.Base(argv[0]), logPath, cmd)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	timedOut := false
	select {
	case <-p.done:
	case <-time.After(timeout):
		timedOut = true
	}
	el := time.Since(p.started)
	ps.stop(p, 5*time.Second)
	fmt.Fprint(lf, out.String())
	switch {
	case timedOut:
		return out.String(), el, fmt.Errorf("%s: no result within %v (log %s)", strings.Join(argv, " "), timeout, logPath)
	case p.err != nil:
		return out.String(), el, fmt.Errorf("%s: %w (log %s)", strings.Join(argv, " "), p.err, logPath)
	}
	return out.String(), el, nil
}
