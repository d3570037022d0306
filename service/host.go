package service

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/metrics"
	"github.com/durusbdb/durusbdb/server"
)

// setMemoryLimit sets a soft memory limit for the Go heap (unless
// GOMEMLIMIT is set): what is in use now, plus the budget of bytes in
// flight and those of the invalid and unused sets (0: the machine
// default), the record cache and 32 MiB. The budgets bound the live bytes
// of commits, replies and the connections' sets; the limit makes the
// collector reclaim the garbage they leave (growing buffers) before the
// heap reaches twice their size, so the process stays near the budgets.
func setMemoryLimit(log *slog.Logger, inflight, invalid, unused, recordCache int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	// The server's defaults for the three budgets (server.Config).
	for _, b := range []*int64{&inflight, &invalid, &unused} {
		if *b <= 0 {
			*b = server.MachineInflight()
		}
	}
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}}
	rtmetrics.Read(s)
	var base int64
	if s[0].Value.Kind() == rtmetrics.KindUint64 {
		base = int64(s[0].Value.Uint64())
	}
	limit := base + inflight + invalid + unused + max(recordCache, 0) + 32<<20
	debug.SetMemoryLimit(limit)
	log.Info("soft memory limit for the Go heap", "bytes", limit, "max_inflight", inflight,
		"max_invalid_memory", invalid, "max_unused_memory", unused)
}

// recordCacheBytes is the engine's record cache for --record-cache rc
// (0: default, negative: none) and --cache-size cache (0: 64 MiB).
func recordCacheBytes(rc, cache int64) int64 {
	switch {
	case rc < 0:
		return 0
	case rc > 0:
		return rc
	case cache <= 0:
		return (64 << 20) / 8
	}
	return cache / 8
}

// watchParent calls stop (a clean shutdown, as SIGTERM) once pid is no
// longer this process's parent: the Python shim's process has gone.
func watchParent(ctx context.Context, pid int, log *slog.Logger, stop func()) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if os.Getppid() != pid {
				log.Info("parent process gone: shutting down", "parent_pid", pid)
				stop()
				return
			}
		}
	}
}

// reopenOnHUP reopens the log file at each signal on hup until done is
// closed; with no log file (lf nil: the log goes to stderr) a SIGHUP is
// only logged. SIGHUP never stops the server.
func reopenOnHUP(hup <-chan os.Signal, done <-chan struct{}, lf *logFile, log *slog.Logger) {
	for {
		select {
		case <-done:
			return
		case <-hup:
		}
		if lf == nil {
			log.Info("SIGHUP: no --log-file to reopen; the log goes to stderr")
			continue
		}
		if err := lf.Reopen(); err != nil {
			log.Error("SIGHUP: the log file was not reopened; still logging to the old one", "path", lf.path, "err", err)
			continue
		}
		log.Info("log file reopened", "path", lf.path)
	}
}

// warnLowSpace logs a warning when the database's file system has less
// free space than the commit reserve (commits would be refused).
func warnLowSpace(log *slog.Logger, dir string, reserve int64) {
	fs, err := metrics.FreeSpace(dir)
	if err != nil {
		log.Warn("cannot tell the free space of the database's file system", "dir", dir, "err", err)
		return
	}
	if reserve > 0 && fs.Free < reserve {
		log.Warn("free space is below the reserve: commits will be refused until space is freed (or --min-free-space lowered)",
			"dir", dir, "free_bytes", fs.Free, "min_free_space_bytes", reserve)
	}
	if reserve > 0 && fs.FreeInodes >= 0 && fs.FreeInodes < engine.MinFreeInodes {
		log.Warn("free inodes are below the minimum (df -i): commits will be refused until some are freed",
			"dir", dir, "free_inodes", fs.FreeInodes, "min_free_inodes", engine.MinFreeInodes)
	}
}
