package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/durus/pickle"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/metrics"
	"github.com/durusbdb/durusbdb/recovery"
	"github.com/durusbdb/durusbdb/server"
)

// serveCommand is `durusbdb serve`, the drop-in replacement for `durus -s`
// (PROTOCOL.md §13): the same option names, plus the database directory
// and durusbdb's own limits.
func serveCommand() *command {
	c := &command{
		name:    "serve",
		summary: "serve a database to Durus clients (drop-in for durus -s)",
		usage:   "durusbdb serve --dir DIR [--create] [--host H] [--port P | --address PATH|@NAME] [flags]",
		example: "durusbdb serve --dir /var/lib/durusbdb --create --port 2972",
	}
	c.run = func(ctx context.Context, cio cmdIO, args []string) error {
		// A server outlives its terminal and its log readers: SIGHUP
		// reopens --log-file (handled once the log is set up; until then
		// it waits here), and a write to a closed stdout or stderr pipe
		// returns EPIPE instead of killing the process with SIGPIPE.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		signal.Ignore(syscall.SIGPIPE)
		var f dbFlags
		fs := newFlagSet(c, cio)
		f.register(fs)
		// durus -s options.
		host := fs.String("host", server.DefaultHost, "host to listen on (durus -s --host)")
		port := fs.Int("port", server.DefaultPort, "TCP port to listen on (durus -s --port)")
		address := fs.String("address", "", "unix socket path, or @name for a Linux abstract socket; overrides --host/--port")
		owner := fs.String("owner", "", "owner of the unix socket file (name or number)")
		group := fs.String("group", "", "group of the unix socket file (name or number)")
		umask := fs.String("umask", "", "umask for the unix socket file (Durus int syntax: 077 octal, 0x3f hex, 77 decimal); default mode 0600")
		readonly := fs.Bool("readonly", false, "open the database read-only: commits are refused with E")
		gcbytes := fs.Int64("gcbytes", 0, "start a full collection after this many committed bytes (0: never)")
		var logPath string
		fs.StringVar(&logPath, "log-file", "", "append the log to this file (default stderr); SIGHUP reopens it (logrotate)")
		fs.StringVar(&logPath, "logfile", "", "the same as --log-file (durus -s spelling)")
		level := fs.Int("logginglevel", 20, "Durus logging level: <=10 debug, <=20 info, <=30 warning, above error")
		stop := fs.Bool("stop", false, "instead of serving, send Q to the server at the address and wait until it stops")
		file := fs.String("file", "", "not supported: a Durus file; import it with 'durusbdb migrate', then serve --dir")
		repair := fs.Bool("repair", false, "accepted for compatibility; recovery is automatic")
		// durusbdb options.
		create := fs.Bool("create", false, "create a new database if --dir is empty")
		durability := fs.String("durability", "sync", "when commits are acknowledged: sync, write-nosync or nosync")
		maxCommit := fs.String("max-commit", "1GiB", "largest commit accepted (bytes or with KiB/MiB/GiB, at most 4GiB-1)")
		maxBulk := fs.Int("max-bulk", server.DefaultMaxBulk, "largest bulk-load count; above it the connection is closed")
		lease := fs.Duration("commit-lease", 5*time.Second, "commit token lease: a stalled committer loses the token after this if others wait")
		gcGrace := fs.Duration("gc-grace", engine.DefaultGCGrace, "reference-count collector grace period")
		noQuit := fs.Bool("no-quit", false, "ignore Q requests from clients (log them and close that connection)")
		verifyRefs := fs.Bool("verify-refs", false, "scan each committed record's pickle and refuse it (E) if its references differ from its refs")
		verifyLimits := fs.String("verify-limits", "", "limits of each --verify-refs scan, name=value,...: decompressed (bytes), ratio, stack, memo, items, ops (default: the pickle package's)")
		maxInflight := fs.String("max-inflight", "", "budget of bytes in flight: commit data being read and large load replies being written (default: an eighth of memory, 64MiB to 4GiB)")
		inflightWait := fs.Duration("inflight-wait", server.DefaultInflightWait, "how long a request waits for room in --max-inflight before it is refused with E")
		minWriteRate := fs.String("min-write-rate", "256KiB", "slowest a client may read a large load reply (bytes/s; 0: no bound but the write timeout)")
		maxConns := fs.Int("max-connections", server.DefaultMaxConnections, "connections served at once; more are closed at once")
		maxInvalidRuns := fs.Int("max-invalid-runs", server.DefaultMaxInvalidRuns, "runs of consecutive oids (16 bytes each) a connection's invalid set may hold; more closes that connection (rule I7)")
		idle := fs.Duration("idle-timeout", 0, "close connections idle between requests for this long (0: never)")
		allowQuit := fs.String("allow-quit", "local", "who may stop the server with Q: any, local (unix socket and loopback peers) or none")
		tlsCert := fs.String("tls-cert", "", "serve TLS with this PEM certificate (chain); needs --tls-key")
		tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
		tlsClientCA := fs.String("tls-client-ca", "", "with --tls-cert: require client certificates signed by a CA in this PEM file")
		maxPerAddr := fs.Int("max-connections-per-address", 0, "TCP connections served at once from one IP address; more are closed at once (0: no limit)")
		metricsAddr := fs.String("metrics", "", "serve Prometheus metrics over HTTP at host:port/metrics (e.g. 127.0.0.1:9297; empty: off)")
		// Storage policies (the original's constructor options).
		access := fs.String("access", "btree", "access method of objects.db for a new database: btree or hash")
		pageSize := fs.String("page-size", "16KiB", "page size of objects.db for a new database")
		recCache := fs.String("record-cache", "", "part of --cache-size kept for recently loaded records in Go memory (default: an eighth; 0: none)")
		minFree := fs.String("min-free-space", "64MiB", "refuse commits (E) that would leave less free space than this on the database's file system")
		validateGarbage := fs.Bool("validate-garbage", false, "check every garbage candidate before the collector deletes it")
		gcMode := fs.String("gc-mode", "continuous", "reference-count collector: continuous (rate limited), idle (only when no commit for a while) or manual")
		gcRate := fs.Int("gc-rate", engine.DefaultGCRate, "collector rate limit, objects per second")
		ckptEvery := fs.Duration("checkpoint-interval", engine.DefaultCheckpointEvery, "checkpoint after this much time (negative: never by time)")
		ckptBytes := fs.String("checkpoint-log-bytes", "16MiB", "checkpoint after about this much committed data")
		ckptCommits := fs.Int("checkpoint-commits", 0, "checkpoint after this many commits (0: not by count)")
		ckptManual := fs.Bool("checkpoint-manual", false, "no background checkpoints (durusbdb checkpoint, or shutdown, does them)")
		keepLogs := fs.Bool("keep-logs", false, "keep Berkeley DB log files after checkpoints (catastrophic recovery, incremental backups: backup --incremental needs every log since the last backup)")
		parentPID := fs.Int("parent-pid", 0, "shut down cleanly once this process is no longer the parent (used by the Python shim)")
		fs.String("config", "", "read settings from this file: one 'flag = value' per line, # comments")
		printCfg := fs.Bool("print-config", false, "print the effective settings and where each comes from, then exit")
		cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile (pprof) of the whole run to this file")
		src, err := parseConfigFlags(c, cio, fs, args)
		if err != nil {
			return err
		}
		if *printCfg {
			printConfig(cio.stdout, fs, src)
			return nil
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

		lc := server.ListenConfig{Host: *host, Port: *port, Address: *address, Owner: *owner, Group: *group}
		if *port < 0 || *port > 65535 {
			return &usageError{fmt.Sprintf("--port %d out of range", *port)}
		}
		if *umask != "" {
			u, err := strconv.ParseInt(*umask, 0, 32)
			if err != nil || u < 0 || u > 0o777 {
				return &usageError{fmt.Sprintf("--umask: bad value %q", *umask)}
			}
			ui := int(u)
			lc.Umask = &ui
		}
		quitPolicy, err := server.ParseQuitPolicy(*allowQuit)
		if err != nil {
			return &usageError{err.Error()}
		}
		if *maxPerAddr < 0 {
			return &usageError{"--max-connections-per-address must not be negative"}
		}
		if (*tlsCert == "") != (*tlsKey == "") || (*tlsClientCA != "" && *tlsCert == "") {
			return &usageError{"--tls-cert and --tls-key go together; --tls-client-ca needs them"}
		}
		if *stop {
			if *tlsCert != "" {
				return &usageError{"--stop does not speak TLS: stop a TLS server with SIGTERM"}
			}
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := server.Stop(sctx, lc); err != nil {
				return err
			}
			fmt.Fprintf(cio.stdout, "durusbdb server at %s stopped\n", lc)
			return nil
		}
		if *file != "" {
			return &usageError{"--file names a Durus file; durusbdb serves a database directory: import the file with 'durusbdb migrate' and use --dir"}
		}

		// Logging.
		var logw io.Writer = cio.stderr
		var lf *logFile
		if logPath != "" {
			var err error
			if lf, err = openLogFile(logPath); err != nil {
				return fmt.Errorf("--log-file: %w", err)
			}
			defer lf.Close()
			logw = lf
		}
		hopts := &slog.HandlerOptions{Level: durusLevel(*level)}
		var log *slog.Logger
		switch f.logFormat {
		case "text":
			log = slog.New(slog.NewTextHandler(logw, hopts))
		case "json":
			log = slog.New(slog.NewJSONHandler(logw, hopts))
		default:
			return &usageError{fmt.Sprintf("--log-format must be text or json, not %q", f.logFormat)}
		}
		if *repair {
			log.Info("--repair has no effect: durusbdb recovers automatically")
		}
		hupDone := make(chan struct{})
		defer close(hupDone)
		go reopenOnHUP(hup, hupDone, lf, log)

		// Engine options.
		dur, err := kv.ParseDurability(*durability)
		if err != nil {
			return &usageError{"--durability: " + err.Error()}
		}
		cache, err := parseSize(f.cacheSize)
		if err != nil {
			return &usageError{"--cache-size: " + err.Error()}
		}
		var inflight int64
		if *maxInflight != "" {
			if inflight, err = parseSize(*maxInflight); err != nil || inflight <= 0 {
				return &usageError{fmt.Sprintf("--max-inflight: bad value %q", *maxInflight)}
			}
		}
		rate, err := parseSize(*minWriteRate)
		if err != nil || rate < 0 {
			return &usageError{fmt.Sprintf("--min-write-rate: bad value %q", *minWriteRate)}
		}
		if rate == 0 {
			rate = -1 // no bound
		}
		scanLimits, err := pickle.ParseLimits(*verifyLimits)
		if err != nil {
			return &usageError{fmt.Sprintf("--verify-limits: %v", err)}
		}
		mc, err := parseSize(*maxCommit)
		if err != nil || mc <= 0 || mc > server.MaxCommitLimit {
			return &usageError{fmt.Sprintf("--max-commit: bad value %q (1 to 4294967295 bytes)", *maxCommit)}
		}
		if *maxBulk <= 0 || *maxConns <= 0 || *maxInvalidRuns <= 0 || *lease <= 0 || *gcbytes < 0 {
			return &usageError{"--max-bulk, --max-connections, --max-invalid-runs and --commit-lease must be positive, --gcbytes not negative"}
		}
		if f.dir == "" {
			return &usageError{"--dir is required"}
		}
		fi, err := os.Stat(f.dir)
		if err != nil {
			return fmt.Errorf("database directory %s: %w", f.dir, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("database directory %s is not a directory", f.dir)
		}
		cfg := server.Config{
			MaxBulk:        *maxBulk,
			MaxCommit:      mc,
			CommitLease:    *lease,
			MaxConnections: *maxConns,
			MaxInvalidRuns: *maxInvalidRuns,
			IdleTimeout:    *idle,
			NoQuit:         *noQuit,
			GCBytes:        *gcbytes,
			Logger:         log,
			MaxInflight:    inflight,
			InflightWait:   *inflightWait,
			MinWriteRate:   rate,
		}
		if *verifyRefs {
			cfg.VerifyRefs = func(oid uint64, rec []byte) error { return scanLimits.CheckRefs(rec) }
		}

		cfg.AllowQuit, cfg.MaxConnsPerAddress = quitPolicy, *maxPerAddr
		if *tlsCert != "" {
			if cfg.TLS, err = server.TLSConfig(*tlsCert, *tlsKey, *tlsClientCA); err != nil {
				return err
			}
		}

		// Listen first: a busy address fails before the database is opened.
		ln, err := server.Listen(ctx, lc)
		if err != nil {
			return err
		}
		// Metrics: listening now too, so a busy address fails early; the
		// engine's collectors are added once it is open. Stopped after the
		// server, before the database is closed.
		var mets *metrics.Metrics
		stopMetrics := func() {}
		if *metricsAddr != "" {
			mets = metrics.New(metrics.Options{Version: Version})
			cfg.Observer = mets
			ep, err := mets.Listen(*metricsAddr, log)
			if err != nil {
				ln.Close()
				return err
			}
			stopMetrics = func() {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				if err := ep.Close(sctx); err != nil {
					log.Warn("metrics: stopping the HTTP server", "err", err)
				}
			}
			defer func() { stopMetrics() }() // early returns; Close is idempotent
		}
		// A second SIGINT/SIGTERM after the first exits at once, also while
		// the database is being opened; a shutdown that overruns its 10 s
		// is ended too.
		finished := make(chan struct{})
		defer close(finished)
		quitting := make(chan struct{}) // closed by Q (srv.Done) once serving
		stopping := make(chan struct{}) // closed at the first signal or Q: /readyz fails
		go func() {
			select {
			case <-ctx.Done():
			case <-quitting:
			case <-finished:
				return
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			select {
			case s := <-sig:
				log.Error("second signal: exiting without a clean shutdown", "signal", s.String())
				os.Exit(exitFailed)
			case <-time.After(12 * time.Second):
				log.Error("shutdown took longer than 10 s: exiting")
				os.Exit(exitFailed)
			case <-finished:
			}
		}()

		relay := &server.RemoveRelay{}
		grace := *gcGrace
		if set["gc-grace"] && grace == 0 {
			grace = -1 // engine: negative means no grace period
		}
		if *access != "btree" && *access != "hash" {
			ln.Close()
			return &usageError{fmt.Sprintf("--access must be btree or hash, not %q", *access)}
		}
		ps, err1 := parseSize(*pageSize)
		free, err2 := parseSize(*minFree)
		cb, err3 := parseSize(*ckptBytes)
		mode, err4 := parseGCMode(*gcMode)
		var rc int64
		var err5 error
		if *recCache != "" {
			if rc, err5 = parseSize(*recCache); err5 == nil && rc == 0 {
				rc = -1 // engine: negative disables the record cache
			}
		}
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			ln.Close()
			return &usageError{err.Error()}
		}
		if free == 0 {
			free = -1 // engine: negative disables the reserve
		}
		if *cpuProfile != "" {
			pf, err := os.Create(*cpuProfile)
			if err != nil {
				ln.Close()
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			if err := pprof.StartCPUProfile(pf); err != nil {
				ln.Close()
				return fmt.Errorf("--cpuprofile: %w", err)
			}
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		}
		if *parentPID > 0 {
			var stopParent context.CancelFunc
			ctx, stopParent = context.WithCancel(ctx)
			defer stopParent()
			go watchParent(ctx, *parentPID, log, stopParent)
		}
		go func(ctx context.Context) {
			defer close(stopping)
			select {
			case <-ctx.Done():
			case <-quitting:
			case <-finished:
			}
		}(ctx)
		// Report what recovery does (Berkeley DB: log range replayed, time),
		// and refuse directories of an older Berkeley DB release.
		if err := recovery.CheckFormat(f.dir); err != nil {
			ln.Close()
			return err
		}
		if !*readonly {
			// A report only: the engine's own open runs recovery again
			// (DB_RECOVER), and decides whether the directory can be served.
			if _, err := recovery.AtOpen(context.WithoutCancel(ctx), f.dir, recovery.Options{Logger: log, CacheSize: cache}); err != nil {
				log.Warn("recovery report failed; the database open runs recovery itself", "dir", f.dir, "err", err)
			}
		}
		// Opening (recovery included) is not interrupted by the first
		// signal: the server then shuts down cleanly at once.
		db, err := engine.Open(context.WithoutCancel(ctx), f.dir, engine.Options{
			Create:          *create,
			ReadOnly:        *readonly,
			Backend:         f.backend,
			Access:          *access,
			PageSize:        int(ps),
			CacheSize:       cache,
			RecordCache:     rc,
			Durability:      dur,
			GCGrace:         grace,
			GC:              engine.GCPolicy{Mode: mode, Rate: *gcRate},
			ValidateGarbage: *validateGarbage,
			MinFreeSpace:    free,
			Checkpoint: engine.CheckpointPolicy{Every: *ckptEvery, LogBytes: cb, Commits: *ckptCommits,
				Manual: *ckptManual, KeepLogs: *keepLogs},
			Logger:   log,
			OnRemove: relay.OnRemove,
		})
		if err != nil {
			ln.Close()
			return err
		}
		reserve := max(free, 0) // the engine's reserve; -1 disabled it
		warnLowSpace(log, f.dir, reserve)
		if mets != nil {
			if err := mets.RegisterEngine(db, log); err != nil {
				db.Close()
				ln.Close()
				return fmt.Errorf("metrics: %w", err)
			}
			mets.SetProbes(metrics.Probes{Store: db, MinFreeSpace: reserve, Stopping: stopping})
		}
		setMemoryLimit(log, cfg.MaxInflight, recordCacheBytes(rc, cache))
		if budget := cmp.Or(cfg.MaxInflight, server.MachineInflight()); cfg.MaxCommit/3*4 > budget {
			log.Warn("commits near --max-commit cannot fit in --max-inflight (a commit is charged up to 4/3 of its length) and will be refused",
				"max_commit", cfg.MaxCommit, "max_inflight", budget)
		}
		srv := server.New(cfg, server.Engine(db))
		relay.Attach(srv)
		// --- control socket (begin): the tools on a live database (package
		// control, live.go). Stopped with the metrics endpoint, right after
		// Serve returns and before the database is closed.
		// A directory the server cannot write (a read-only server on a
		// read-only file system) gets no control socket: serve anyway.
		if ctl, err := control.Listen(f.dir, controlHandler(db, srv.NumConns), log); err != nil {
			log.Warn("no control socket: tools cannot run while this server holds the directory", "dir", f.dir, "err", err)
		} else {
			log.Info("control socket listening", "addr", ctl.Addr())
			stopMetricsOnly := stopMetrics
			stopMetrics = func() {
				if err := ctl.Close(); err != nil {
					log.Warn("control: closing the socket", "err", err)
				}
				stopMetricsOnly()
			}
			defer ctl.Close() // early returns; Close is idempotent
		}
		// --- control socket (end) ---
		go func() {
			select {
			case <-srv.Done():
				close(quitting)
			case <-finished:
			}
		}()
		// A fatal storage error (libdb DB_RUNRECOVERY or panic, a failed
		// log flush) stops the server: no new connections, every
		// connection closed, exit non-zero, so that a supervisor restarts
		// it and recovery runs.
		serveCtx, stopServing := context.WithCancel(ctx)
		defer stopServing()
		go func() {
			select {
			case <-db.Failed():
				log.Error("storage failed: stopping the server; restart it so that recovery runs", "dir", f.dir, "err", db.FailErr())
				stopServing()
			case <-finished:
			}
		}()

		log.Info("durusbdb serve", "version", Version, "dir", f.dir, "backend", db.Backend(),
			"readonly", db.ReadOnly(), "durability", dur.String(), "address", lc.String())
		serveErr := srv.Serve(serveCtx, ln)
		stopMetrics()
		closeErr := db.Close()
		if failErr := db.FailErr(); failErr != nil {
			return &exitError{code: exitFailed, err: fmt.Errorf("serve %s: %w", f.dir, failErr)}
		}
		if serveErr != nil {
			return serveErr
		}
		if closeErr != nil {
			return fmt.Errorf("closing the database: %w", closeErr)
		}
		log.Info("database closed")
		return nil
	}
	return c
}

// setMemoryLimit sets a soft memory limit for the Go heap (unless
// GOMEMLIMIT is set): what is in use now, plus the budget of bytes in
// flight (0: the machine default), the record cache and 32 MiB. The budget
// bounds the live bytes of commits and replies; the limit makes the
// collector reclaim the garbage they leave (growing buffers) before the
// heap reaches twice their size, so the process stays near the budget.
func setMemoryLimit(log *slog.Logger, inflight, recordCache int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if inflight <= 0 {
		inflight = server.MachineInflight()
	}
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}}
	rtmetrics.Read(s)
	var base int64
	if s[0].Value.Kind() == rtmetrics.KindUint64 {
		base = int64(s[0].Value.Uint64())
	}
	limit := base + inflight + max(recordCache, 0) + 32<<20
	debug.SetMemoryLimit(limit)
	log.Info("soft memory limit for the Go heap", "bytes", limit, "max_inflight", inflight)
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

// parseGCMode parses --gc-mode.
func parseGCMode(s string) (engine.GCMode, error) {
	for _, m := range []engine.GCMode{engine.GCContinuous, engine.GCIdle, engine.GCManual} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("--gc-mode must be continuous, idle or manual, not %q", s)
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
}

// durusLevel maps Durus's numeric logging levels to slog levels.
func durusLevel(n int) slog.Level {
	switch {
	case n <= 10:
		return slog.LevelDebug
	case n <= 20:
		return slog.LevelInfo
	case n <= 30:
		return slog.LevelWarn
	}
	return slog.LevelError
}
