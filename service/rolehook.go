package service

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// DefaultRoleHookTimeout bounds one run of the role-change command.
const DefaultRoleHookTimeout = 30 * time.Second

// maxHookQueue bounds the role changes waiting for the command: past it
// only the newest is kept (the command must act on the current role).
const maxHookQueue = 16

// maxHookOutput bounds the command output kept (and logged) per run.
const maxHookOutput = 4096

// RoleHookConfig is serve --on-role-change: a command run for the role
// at start and on every replication role change (for a floating IP or a
// DNS update).
type RoleHookConfig struct {
	// Command runs with sh -c, with DURUSBDB_ROLE (master, replica, ...),
	// DURUSBDB_MASTER (the master's Durus address, empty if unknown) and
	// DURUSBDB_MASTER_REPL (its replication address) added to the
	// environment. Empty: no hook.
	Command string
	// Timeout kills a run (its whole process group) that lasts longer;
	// 0 means DefaultRoleHookTimeout.
	Timeout time.Duration
}

// roleHook runs a RoleHookConfig's command once per role change, one run
// at a time and in the order of the changes. Output is logged; a failure
// is logged and the server goes on.
type roleHook struct {
	cfg RoleHookConfig
	log *slog.Logger

	mu      sync.Mutex
	queue   []kv.RoleInfo
	last    kv.RoleInfo // the newest change queued: repeats are dropped
	hasLast bool
	closed  bool
	wake    chan struct{} // capacity 1: the queue grew or the hook closed
	done    chan struct{} // closed when the runner returns
	ctx     context.Context
	cancel  context.CancelFunc
}

// startRoleHook starts the runner of cfg; Close stops it.
func startRoleHook(cfg RoleHookConfig, log *slog.Logger) *roleHook {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRoleHookTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &roleHook{cfg: cfg, log: log, wake: make(chan struct{}, 1), done: make(chan struct{}), ctx: ctx, cancel: cancel}
	go h.run()
	return h
}

// Notify queues a run for ri unless it repeats the previous change (same
// role and master). It never blocks: it is called from the engine's role
// tracking.
func (h *roleHook) Notify(ri kv.RoleInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || (h.hasLast && ri.Role == h.last.Role && ri.MasterDurusAddr == h.last.MasterDurusAddr && ri.MasterReplAddr == h.last.MasterReplAddr) {
		return
	}
	h.last, h.hasLast = ri, true
	if len(h.queue) >= maxHookQueue {
		h.log.Warn("role hook: too many role changes waiting; running the command for the newest only", "dropped", len(h.queue))
		h.queue = h.queue[:0]
	}
	h.queue = append(h.queue, ri)
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// NotifyInitial queues a run for the role the site has when the hook is
// attached, unless a change was notified already (it is newer). The
// engine may have changed role while the database opened, before the
// hook could hear of it: the command then still learns the current role.
func (h *roleHook) NotifyInitial(ri kv.RoleInfo) {
	h.mu.Lock()
	seen := h.hasLast
	h.mu.Unlock()
	if !seen {
		h.Notify(ri)
	}
}

// Close drops the changes not yet run, lets a run in progress finish
// (within its timeout, or until ctx ends: then it is killed) and returns
// once the runner stopped.
func (h *roleHook) Close(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	if n := len(h.queue); n > 0 {
		h.log.Info("role hook: shutting down; role changes not run", "count", n)
	}
	h.queue = nil
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	select {
	case <-h.done:
	case <-ctx.Done():
		h.cancel()
		<-h.done
	}
	h.cancel()
}

// run takes the queued changes one by one until Close.
func (h *roleHook) run() {
	defer close(h.done)
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return
		}
		if len(h.queue) == 0 {
			h.mu.Unlock()
			<-h.wake
			continue
		}
		ri := h.queue[0]
		h.queue = h.queue[1:]
		h.mu.Unlock()
		h.exec(ri)
	}
}

// hookOutput keeps the first maxHookOutput bytes a command writes and
// counts the rest: a command that prints without end costs the server
// that much memory, not its output.
type hookOutput struct {
	kept    []byte
	dropped int64
}

// Write keeps what fits and drops the rest; it never fails, so the
// command is not stopped by a broken pipe.
func (o *hookOutput) Write(p []byte) (int, error) {
	n := min(len(p), maxHookOutput-len(o.kept))
	o.kept = append(o.kept, p[:n]...)
	o.dropped += int64(len(p) - n)
	return len(p), nil
}

// exec runs the command once for ri and logs how it went.
func (h *roleHook) exec(ri kv.RoleInfo) {
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", h.cfg.Command)
	cmd.Env = append(os.Environ(), "DURUSBDB_ROLE="+ri.Role, "DURUSBDB_MASTER="+ri.MasterDurusAddr, "DURUSBDB_MASTER_REPL="+ri.MasterReplAddr)
	out := &hookOutput{}
	cmd.Stdout, cmd.Stderr = out, out // one writer: exec.Cmd calls its Write from one goroutine at a time
	// Its own process group, killed whole at the timeout: a background
	// child of the command must not keep running, nor keep the output
	// pipe open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	attrs := []any{"role", ri.Role, "master", ri.MasterDurusAddr, "duration", time.Since(start).Round(time.Millisecond)}
	if o := out.kept; len(o) > 0 {
		attrs = append(attrs, "output", string(bytes.TrimRight(o, "\n")))
	}
	if out.dropped > 0 {
		attrs = append(attrs, "output_bytes_dropped", out.dropped)
	}
	switch {
	case err == nil:
		h.log.Info("role hook: --on-role-change command done", attrs...)
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.log.Error("role hook: --on-role-change command killed after its timeout", append(attrs, "timeout", h.cfg.Timeout)...)
	default:
		h.log.Error("role hook: --on-role-change command failed", append(attrs, "err", err)...)
	}
}
