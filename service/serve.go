package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/sysmon"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/metrics"
	"github.com/durusbdb/durusbdb/recovery"
	"github.com/durusbdb/durusbdb/server"
)

// ShutdownTimeout bounds a clean shutdown once ForceExit is set: past it
// (plus a margin) ForceExit is called.
const ShutdownTimeout = 10 * time.Second

// instance is one run of Serve: what its steps share.
type instance struct {
	cfg Config
	log *slog.Logger
	lf  *logFile
	ln  net.Listener

	observer *metrics.Metrics
	relay    *server.RemoveRelay // the engine's OnRemove, attached to the server
	closer   connCloser          // the engine's OnReset, attached to the server
	cleanups []func()            // run in reverse order when Serve returns
	// endpoints stop the metrics and control listeners: right after the
	// server stops, before the database is closed.
	endpoints []func()

	finished chan struct{} // closed when Serve returns
	opened   atomic.Bool   // the database is open (the watchdog's log says what a signal waits for)
	quitting chan struct{} // closed by Q (the server's Done) once serving
	stopping chan struct{} // closed at the first signal or Q: /readyz fails
}

// Serve opens cfg.Dir and serves it until ctx is cancelled, a client
// sends Q (when allowed), or the storage fails. A bad Config is a
// *ConfigError. Serve ignores SIGPIPE (a closed log pipe must not kill a
// server) and handles SIGHUP (reopens Log.File) while it runs.
func Serve(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	in := &instance{cfg: cfg, finished: make(chan struct{}), quitting: make(chan struct{}), stopping: make(chan struct{})}
	defer in.cleanup()
	in.onReturn(func() { close(in.finished) })
	// A server outlives its terminal and its log readers: SIGHUP reopens
	// the log file, and a write to a closed pipe returns EPIPE instead of
	// killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	in.onReturn(func() { signal.Stop(hup) })
	signal.Ignore(syscall.SIGPIPE)
	if err := in.openLog(); err != nil {
		return err
	}
	go reopenOnHUP(hup, in.finished, in.lf, in.log)
	if err := checkDir(cfg.Dir, cfg.Engine.Create); err != nil {
		return err
	}
	if err := in.listen(ctx); err != nil {
		return err
	}
	ctx, err := in.startAuxiliaries(ctx)
	if err != nil {
		return err
	}
	stopRefusing := func() int { return 0 }
	if in.cfg.Replication != nil && !socketActivated() {
		stopRefusing = refuseWhileOpening(in.ln, in.log)
	}
	db, err := in.openDB(ctx)
	if n := stopRefusing(); n > 0 {
		in.log.Info("client connections closed while the database was opening", "count", n)
	}
	if err != nil && errors.Is(err, kv.ErrOpenCancelled) && ctx.Err() != nil {
		in.log.Info("open abandoned: a stop signal came while the site waited for its replication group", "dir", in.cfg.Dir, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	in.opened.Store(true)
	srv, err := in.newServer(db)
	if err != nil {
		db.Close()
		return err
	}
	return in.serve(ctx, db, srv)
}

// onReturn adds f to what runs when Serve returns (last added, first run).
func (in *instance) onReturn(f func()) { in.cleanups = append(in.cleanups, f) }

func (in *instance) cleanup() {
	for i := len(in.cleanups) - 1; i >= 0; i-- {
		in.cleanups[i]()
	}
}

// stopEndpoints stops the metrics and control listeners (idempotent).
func (in *instance) stopEndpoints() {
	for _, f := range in.endpoints {
		f()
	}
	in.endpoints = nil
}

// openLog sets in.log (and in.lf with Log.File).
func (in *instance) openLog() error {
	lc := in.cfg.Log
	w := lc.Stderr
	if w == nil {
		w = io.Discard
	}
	if lc.File != "" {
		lf, err := openLogFile(lc.File)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		in.lf, w = lf, lf
		in.onReturn(func() { lf.Close() })
	}
	opts := &slog.HandlerOptions{Level: lc.Level}
	if lc.Format == "json" {
		in.log = slog.New(slog.NewJSONHandler(w, opts))
	} else {
		in.log = slog.New(slog.NewTextHandler(w, opts))
	}
	return nil
}

// checkDir refuses a missing directory (creating it with create) or a
// file.
func checkDir(dir string, create bool) error {
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--create: %w", err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("database directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("database directory %s is not a directory", dir)
	}
	return nil
}

// listen opens the client listener and the metrics endpoint first, so
// that a busy address fails before the database is opened.
func (in *instance) listen(ctx context.Context) error {
	ln, err := server.Listen(ctx, in.cfg.Listen)
	if err != nil {
		return err
	}
	in.ln = ln
	in.onReturn(func() { ln.Close() }) // Serve closes it too; a second Close is harmless
	if in.cfg.MetricsAddr == "" {
		return nil
	}
	in.observer = metrics.New(metrics.Options{Version: in.cfg.Version})
	in.cfg.Server.Observer = in.observer
	ep, err := in.observer.Listen(in.cfg.MetricsAddr, in.log)
	if err != nil {
		return fmt.Errorf("--metrics %s: %w", in.cfg.MetricsAddr, err)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := ep.Close(sctx); err != nil {
			in.log.Warn("metrics: stopping the HTTP server", "err", err)
		}
	}
	in.endpoints = append(in.endpoints, stop)
	in.onReturn(in.stopEndpoints)
	return nil
}

// startAuxiliaries starts the shutdown watchdog, the CPU profile and the
// parent watch; the returned context is also cancelled when the parent
// goes away.
func (in *instance) startAuxiliaries(ctx context.Context) (context.Context, error) {
	if in.cfg.ForceExit != nil {
		go in.watchdog(ctx)
	}
	if in.cfg.CPUProfile != "" {
		pf, err := os.Create(in.cfg.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		in.onReturn(func() { pprof.StopCPUProfile(); pf.Close() })
	}
	if in.cfg.ParentPID > 0 {
		var stopParent context.CancelFunc
		ctx, stopParent = context.WithCancel(ctx)
		in.onReturn(stopParent)
		go watchParent(ctx, in.cfg.ParentPID, in.log, stopParent)
	}
	go func() {
		defer close(in.stopping)
		select {
		case <-ctx.Done():
		case <-in.quitting:
		case <-in.finished:
		}
	}()
	return ctx, nil
}

// watchdog calls ForceExit at a second SIGINT/SIGTERM after the first
// (also while the database is being opened), or when a shutdown overruns
// ShutdownTimeout.
func (in *instance) watchdog(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-in.quitting:
	case <-in.finished:
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	if !in.opened.Load() {
		in.log.Info("shutting down once the database open returns (a replication site may be waiting for its group); a second signal exits at once",
			"dir", in.cfg.Dir, "limit", ShutdownTimeout+2*time.Second)
	}
	t := time.NewTimer(ShutdownTimeout + 2*time.Second)
	defer t.Stop()
	select {
	case s := <-sig:
		in.log.Error("second signal: exiting without a clean shutdown", "signal", s.String())
		in.cfg.ForceExit("second signal")
	case <-t.C:
		in.log.Error("shutdown took longer than 10 s: exiting")
		in.cfg.ForceExit("shutdown timeout")
	case <-in.finished:
	}
}

// openDB reports recovery and opens the engine. Opening (recovery
// included) is not interrupted by the first signal: the server then shuts
// down cleanly at once. Only a replication site's wait for its group ends
// at that signal (kv.Replication.Cancel; Serve then returns nil).
func (in *instance) openDB(ctx context.Context) (*engine.DB, error) {
	dir := in.cfg.Dir
	// Refuse directories of an older Berkeley DB release.
	if err := recovery.CheckFormat(dir); err != nil {
		return nil, err
	}
	if in.cfg.Replication == nil {
		// Only the group completes a site stopped during its internal init.
		if err := recovery.CheckSyncFinished(dir); err != nil {
			return nil, err
		}
	}
	if !in.cfg.Engine.ReadOnly && in.cfg.Replication == nil {
		// A report only (log range replayed, time): the engine's own open
		// runs recovery again and decides whether the directory can be
		// served.
		_, err := recovery.AtOpen(context.WithoutCancel(ctx), dir, recovery.Options{Logger: in.log, CacheSize: in.cfg.Engine.CacheSize})
		if errors.Is(err, recovery.ErrLogDamaged) {
			return nil, err // the open's own recovery would cut the log there
		}
		if err != nil {
			in.log.Warn("recovery report failed; the database open runs recovery itself", "dir", dir, "err", err)
		}
	}
	opts := in.cfg.Engine
	opts.Logger = in.log
	relay := &server.RemoveRelay{}
	opts.OnRemove = relay.OnRemove
	opts.OnReplicated = relay.OnReplicated // a replica's clients learn of replicated commits
	in.relay = relay
	opts.OnReset = in.closer.onReset(in.log)
	opts.Replication = replicationOf(in.cfg.Replication, in.ln.Addr().String())
	if opts.Replication != nil {
		opts.Replication.Cancel = ctx.Done() // a stop signal ends the wait for the group
	}
	db, err := engine.Open(context.WithoutCancel(ctx), dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	return db, nil
}

// newServer makes the server of db and starts what observes it: metrics,
// the memory limit and the control socket.
func (in *instance) newServer(db *engine.DB) (*server.Server, error) {
	log, cfg := in.log, &in.cfg
	// The engine's reserve; a negative MinFreeSpace disabled it.
	reserve := max(cfg.Engine.MinFreeSpace, 0)
	warnLowSpace(log, cfg.Dir, reserve)
	// Before SetProbes: a replication site never reports "standalone".
	if err := in.watchRole(db); err != nil {
		return nil, err
	}
	if in.observer != nil {
		if err := in.observer.RegisterEngine(db, log); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		in.observer.SetProbes(metrics.Probes{Store: db, MinFreeSpace: reserve, Stopping: in.stopping})
	}
	scfg := cfg.Server
	scfg.Logger = log
	want := scfg.MaxConnections
	if want <= 0 {
		want = server.DefaultMaxConnections
	}
	n, err := fitConnections(log, want, db.Backend(), cfg.Replication != nil)
	if err != nil {
		return nil, err
	}
	scfg.MaxConnections = n
	setMemoryLimit(log, scfg.MaxInflight, scfg.MaxInvalidMemory, scfg.MaxUnusedMemory, recordCacheBytes(cfg.Engine.RecordCache, cfg.Engine.CacheSize))
	maxCommit := cmp.Or(scfg.MaxCommit, server.DefaultMaxCommit)
	if budget := cmp.Or(scfg.MaxInflight, server.MachineInflight()); int64(server.DataCharge(int(maxCommit))) > budget {
		log.Warn("commits near --max-commit cannot fit in --max-inflight (a commit is charged up to 4/3 of its length plus 64 KiB) and will be refused",
			"max_commit", maxCommit, "max_inflight", budget, "charge_at_max_commit", server.DataCharge(int(maxCommit)))
	}
	srv := server.New(scfg, server.Engine(db))
	in.relay.Attach(srv)
	in.closer.p.Store(srv)
	if cfg.Control != nil {
		in.listenControl(db, srv)
	}
	return srv, nil
}

// listenControl opens the control socket: the tools on a live database.
// A directory the server cannot write (a read-only server on a read-only
// file system) gets none: serve anyway.
func (in *instance) listenControl(db *engine.DB, srv *server.Server) {
	ctl, err := control.Listen(in.cfg.Dir, in.cfg.Control(db, srv.NumConns), in.log)
	if err != nil {
		in.log.Warn("no control socket: tools cannot run while this server holds the directory", "dir", in.cfg.Dir, "err", err)
		return
	}
	in.log.Info("control socket listening", "addr", ctl.Addr())
	in.endpoints = append([]func(){func() {
		if err := ctl.Close(); err != nil {
			in.log.Warn("control: closing the socket", "err", err)
		}
	}}, in.endpoints...)
	in.onReturn(in.stopEndpoints)
}

// serve runs srv until ctx is cancelled, Q, or a storage failure, then
// stops the endpoints and closes db.
func (in *instance) serve(ctx context.Context, db *engine.DB, srv *server.Server) error {
	go func() {
		select {
		case <-srv.Done():
			close(in.quitting)
		case <-in.finished:
		}
	}()
	// A fatal storage error (libdb DB_RUNRECOVERY or panic, a failed log
	// flush) stops the server: no new connections, every connection
	// closed, an error returned, so that a supervisor restarts it and
	// recovery runs.
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	go func() {
		select {
		case <-db.Failed():
			switch err := db.FailErr(); {
			case errors.Is(err, engine.ErrSiteRemoved):
				in.log.Error("stopping the server: "+engine.SiteRemovedAdvice, "dir", in.cfg.Dir, "err", err)
			case errors.Is(err, kv.ErrNoSpace):
				in.log.Error("storage failed: stopping the server; "+engine.NoSpaceAdvice(in.cfg.Dir), "dir", in.cfg.Dir, "err", err)
			case errors.Is(err, kv.ErrCorrupt):
				in.log.Error("storage failed: stopping the server; "+engine.DamageAdvice(in.cfg.Dir), "dir", in.cfg.Dir, "err", err)
			case errors.Is(err, kv.ErrCacheFull):
				in.log.Error("storage failed: stopping the server; "+engine.CacheAdvice(in.cfg.Engine.CacheSize), "dir", in.cfg.Dir, "err", err)
			default:
				in.log.Error("storage failed: stopping the server; restart it so that recovery runs", "dir", in.cfg.Dir, "err", err)
			}
			stopServing()
		case <-in.finished:
		}
	}()
	in.log.Info("durusbdb serve", "version", in.cfg.Version, "dir", in.cfg.Dir, "backend", db.Backend(),
		"readonly", db.ReadOnly(), "durability", in.cfg.Engine.Durability.String(), "address", in.cfg.Listen.String(),
		"sysmon_awake", sysmon.Active())
	if in.cfg.Ready != nil {
		in.cfg.Ready(in.ln.Addr())
	}
	serveErr := srv.Serve(serveCtx, in.ln)
	in.stopEndpoints()
	closeErr := db.Close()
	if failErr := db.FailErr(); failErr != nil {
		return fmt.Errorf("serve %s: %w", in.cfg.Dir, failErr)
	}
	if serveErr != nil {
		return fmt.Errorf("serve %s: %w", in.cfg.Dir, serveErr)
	}
	if closeErr != nil {
		return fmt.Errorf("closing the database: %w", closeErr)
	}
	in.log.Info("database closed")
	return nil
}

// connCloser closes the server's Durus connections when the engine resets
// a replication site in place (engine Options.OnReset); the server is
// attached once it exists (a reset before has no connection to close).
type connCloser struct{ p atomic.Pointer[server.Server] }

// onReset returns the engine's OnReset callback: it closes every
// connection and holds new ones until the reset ends.
func (c *connCloser) onReset(log *slog.Logger) func(error) func() {
	return func(why error) func() {
		if s := c.p.Load(); s != nil {
			n, release := s.HoldConns("site reset: " + why.Error())
			log.Warn("replication site reset in place: every client connection closed, new ones held until it ends", "connections", n, "why", why)
			return release
		}
		return nil
	}
}
