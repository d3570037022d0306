package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
	"github.com/durusbdb/durusbdb/internal/freeport"
	harness "github.com/durusbdb/durusbdb/internal/proc"
)

// procs tracks every process the suite started (through internal/proc,
// the repository's one process harness), so that all of them are ended on
// every exit path; their ids are also written to a pid file that
// scripts/bench.sh's trap reads if the driver itself dies.
type procs struct {
	mu      sync.Mutex
	live    map[int]*proc
	pidFile string
	env     []string // added to every child's environment (keepSysmonAwake)
}

// proc is one started process, named for messages.
type proc struct {
	*harness.Process
	name string
}

func newProcs(pidFile string, env []string) *procs {
	return &procs{live: map[int]*proc{}, pidFile: pidFile, env: env}
}

// start runs argv with stdout and stderr appended to logPath.
func (ps *procs) start(name, logPath string, env []string, argv ...string) (*proc, error) {
	if err := logHeader(logPath, argv); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return ps.launch(name, harness.Options{LogPath: logPath, Env: append(slices.Clone(ps.env), env...)}, argv)
}

// logHeader appends to logPath a line naming argv.
func logHeader(logPath string, argv []string) error {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(lf, "### %s: %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(argv, " "))
	return lf.Close()
}

// launch starts argv and tracks it (pid file, stopAll) until it is stopped.
func (ps *procs) launch(name string, opts harness.Options, argv []string) (*proc, error) {
	hp, err := harness.Start(opts, argv...)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{Process: hp, name: name}
	ps.mu.Lock()
	ps.live[p.Pid()] = p
	ps.writePids()
	ps.mu.Unlock()
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

// stop sends SIGTERM, waits up to grace for the exit, then SIGKILL.
func (ps *procs) stop(p *proc, grace time.Duration) {
	p.Stop(grace)
	ps.mu.Lock()
	delete(ps.live, p.Pid())
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
	if err := p.WaitReady(addr, timeout); err != nil {
		return fmt.Errorf("%s: %w (log %s)", p.name, err, p.LogPath())
	}
	return nil
}

// firstLoad returns the time from the process start to the first 'O'
// reply to L oid, polling at most until timeout.
func firstLoad(p *proc, addr string, oid uint64, timeout time.Duration) (time.Duration, error) {
	end := p.Started().Add(timeout)
	for time.Now().Before(end) {
		if p.Exited() {
			return 0, fmt.Errorf("%s exited before serving (%v); log %s", p.name, p.Err(), p.LogPath())
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
			return time.Since(p.Started()), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no record for oid %d within %v; log %s", p.name, oid, timeout, p.LogPath())
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
	ports, err := freeport.Ports(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// runCmd runs argv to completion within timeout and returns its stdout;
// stderr goes to logPath, and stdout after it. The process is tracked like
// a server, so that stopAll (and the calling script's trap) ends it too.
func (ps *procs) runCmd(timeout time.Duration, logPath string, argv ...string) (string, time.Duration, error) {
	if err := logHeader(logPath, argv); err != nil {
		return "", 0, err
	}
	var out strings.Builder
	p, err := ps.launch(filepath.Base(argv[0]), harness.Options{LogPath: logPath, Stdout: &out, Env: ps.env}, argv)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	werr := p.Wait(timeout)
	el := time.Since(p.Started())
	ps.stop(p, 5*time.Second)
	if lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprint(lf, out.String())
		lf.Close()
	}
	switch {
	case errors.Is(werr, harness.ErrTimeout):
		return out.String(), el, fmt.Errorf("%s: no result within %v (log %s)", strings.Join(argv, " "), timeout, logPath)
	case werr != nil:
		return out.String(), el, fmt.Errorf("%s: %w (log %s)", strings.Join(argv, " "), werr, logPath)
	}
	return out.String(), el, nil
}
