package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/durusbdb/durusbdb/durus/pickle"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/sysmon"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/server"
	"github.com/durusbdb/durusbdb/service"
	"github.com/spf13/pflag"
)

// serveFlags are the flags of `durusbdb serve`: the durus -s options, the
// database directory and durusbdb's own limits and storage policies.
type serveFlags struct {
	db                                            dbFlags
	host, address, owner, group, umask            string
	port, level, parentPID                        int
	readonly, stop, repair, create                bool
	gcbytes                                       int64
	logPath, file, durability, maxCommit          string
	maxBulk, maxConns, maxInvalidRuns, maxPerAddr int
	lease, gcGrace, inflightWait, idle, ckptEvery time.Duration
	noQuit, verifyRefs, validateGarbage           bool
	verifyLimits, maxInflight, minWriteRate       string
	minReadRate                                   string
	maxInvalidMemory, maxUnusedMemory             string
	allowQuit, tlsCert, tlsKey, tlsClientCA       string
	metricsAddr, access, pageSize, recCache       string
	minFree, gcMode, ckptBytes, cpuProfile        string
	gcRate, ckptCommits, maxInvalid               int
	ckptManual, keepLogs, printCfg, keepSysmon    bool
	pageChecksums                                 bool
	repl                                          replFlags
}

// register defines the flags on fs.
func (f *serveFlags) register(fs *pflag.FlagSet) {
	f.db.register(fs)
	// durus -s options.
	fs.StringVar(&f.host, "host", server.DefaultHost, "host to listen on (durus -s --host)")
	fs.IntVar(&f.port, "port", server.DefaultPort, "TCP port to listen on (durus -s --port)")
	fs.StringVar(&f.address, "address", "", "unix socket path, or @name for a Linux abstract socket; overrides --host/--port")
	fs.StringVar(&f.owner, "owner", "", "owner of the unix socket file (name or number)")
	fs.StringVar(&f.group, "group", "", "group of the unix socket file (name or number)")
	fs.StringVar(&f.umask, "umask", "", "umask for the unix socket file (Durus int syntax: 077 octal, 0x3f hex, 77 decimal); default mode 0600")
	fs.BoolVar(&f.readonly, "readonly", false, "open the database read-only: commits are refused with E")
	fs.Int64Var(&f.gcbytes, "gcbytes", 0, "start a full collection after this many committed bytes (0: never)")
	fs.StringVar(&f.logPath, "log-file", "", "append the log to this file (default stderr); SIGHUP reopens it (logrotate)")
	fs.StringVar(&f.logPath, "logfile", "", "the same as --log-file (durus -s spelling)")
	fs.IntVar(&f.level, "logginglevel", 20, "Durus logging level: <=10 debug, <=20 info, <=30 warning, above error")
	fs.BoolVar(&f.stop, "stop", false, "instead of serving, send Q to the server at the address and wait until it stops")
	fs.StringVar(&f.file, "file", "", "not supported: a Durus file; import it with 'durusbdb migrate', then serve --dir")
	fs.BoolVar(&f.repair, "repair", false, "accepted for compatibility; recovery is automatic")
	f.registerLimits(fs)
	f.registerStorage(fs)
	f.repl.register(fs)
	fs.IntVar(&f.parentPID, "parent-pid", 0, "shut down cleanly once this process is no longer the parent (used by the Python shim)")
	fs.String("config", "", "read settings from this file: one 'flag = value' per line, # comments")
	fs.BoolVar(&f.printCfg, "print-config", false, "print the effective settings and where each comes from, then exit")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a Go CPU profile (pprof) of the whole run to this file")
	fs.BoolVar(&f.keepSysmon, "keep-sysmon-awake", true, "keep the Go runtime's sysmon thread out of its deep sleep: serve re-executes itself (same pid) with GODEBUG schedtrace at its largest period, unless GODEBUG already names schedtrace (docs/PERFORMANCE.md)")
}

// registerLimits defines durusbdb's own protocol limits and policies.
func (f *serveFlags) registerLimits(fs *pflag.FlagSet) {
	fs.BoolVar(&f.create, "create", false, "create a new database if --dir is empty")
	fs.StringVar(&f.durability, "durability", "sync", "when commits are acknowledged: sync, write-nosync or nosync")
	fs.StringVar(&f.maxCommit, "max-commit", "1GiB", "largest commit accepted (bytes or with KiB/MiB/GiB, at most 4GiB-1)")
	fs.IntVar(&f.maxBulk, "max-bulk", server.DefaultMaxBulk, "largest bulk-load count; above it the connection is closed")
	fs.DurationVar(&f.lease, "commit-lease", 5*time.Second, "commit token lease: a stalled committer loses the token after this if others wait")
	fs.DurationVar(&f.gcGrace, "gc-grace", engine.DefaultGCGrace, "reference-count collector grace period")
	fs.BoolVar(&f.noQuit, "no-quit", false, "ignore Q requests from clients (log them and close that connection)")
	fs.BoolVar(&f.verifyRefs, "verify-refs", false, "scan each committed record's pickle and refuse it (E) if its references differ from its refs")
	fs.StringVar(&f.verifyLimits, "verify-limits", "", "limits of each --verify-refs scan, name=value,...: decompressed (bytes), ratio, stack, memo, items, ops (default: the pickle package's)")
	fs.StringVar(&f.maxInflight, "max-inflight", "", "budget of bytes in flight: commit data being read and large load replies being written (default: an eighth of memory, 64MiB to 4GiB)")
	fs.DurationVar(&f.inflightWait, "inflight-wait", server.DefaultInflightWait, "how long a request waits for room in --max-inflight before it is refused with E")
	fs.StringVar(&f.minWriteRate, "min-write-rate", "256KiB", "slowest a client may read a large load reply (bytes/s; 0: no bound but the write timeout)")
	fs.StringVar(&f.minReadRate, "min-read-rate", "256KiB", "slowest a commit's data may arrive (bytes/s): all of it within the request timeout plus its length at this rate, else the connection is closed (0: no bound but the request timeout per read)")
	fs.IntVar(&f.maxConns, "max-connections", server.DefaultMaxConnections, "connections served at once; more are closed at once")
	fs.IntVar(&f.maxInvalid, "max-invalid", server.DefaultMaxInvalid, "oids a connection's invalid set may hold (the list its next sync or commit is sent: 8 bytes each); more closes that connection (rule I7; removals by a collection are left untold instead), and a commit of more records is refused with E (at most 4294967295)")
	fs.IntVar(&f.maxInvalidRuns, "max-invalid-runs", server.DefaultMaxInvalidRuns, "runs of consecutive oids (16 bytes each) a connection's invalid set may hold; more closes that connection (rule I7; removals by a collection are left untold instead)")
	fs.StringVar(&f.maxUnusedMemory, "max-unused-memory", "", "bytes the unused sets (oids handed out, not yet committed) of all connections may hold together (24 a run); an allocation that would go over, or a commit that fragments them over it, closes its connection (default: an eighth of memory, 64MiB to 4GiB)")
	fs.StringVar(&f.maxInvalidMemory, "max-invalid-memory", "", "bytes the invalid sets of all connections may hold together (16 a run); a commit whose runs alone would take them over is refused with E, a connection whose set would go over closes (rule I7) (default: an eighth of memory, 64MiB to 4GiB)")
	fs.DurationVar(&f.idle, "idle-timeout", 0, "close connections idle between requests for this long (0: never)")
	fs.StringVar(&f.allowQuit, "allow-quit", "local", "who may stop the server with Q: any, local (unix socket and loopback peers) or none")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve TLS with this PEM certificate (chain); needs --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "with --tls-cert: require client certificates signed by a CA in this PEM file")
	fs.IntVar(&f.maxPerAddr, "max-connections-per-address", 0, "TCP connections served at once from one IP address; more are closed at once (0: no limit)")
	fs.StringVar(&f.metricsAddr, "metrics", "", "serve Prometheus metrics over HTTP at host:port/metrics (e.g. 127.0.0.1:9297; empty: off)")
}

// registerStorage defines the storage policies (the original's
// constructor options).
func (f *serveFlags) registerStorage(fs *pflag.FlagSet) {
	fs.StringVar(&f.access, "access", "btree", "access method of objects.db for a new database: btree or hash")
	fs.StringVar(&f.pageSize, "page-size", "16KiB", "page size of objects.db for a new database")
	fs.BoolVar(&f.pageChecksums, "page-checksums", true, "Berkeley DB: give a new database's files page checksums (a page damaged on disk is refused, not served; each page read from disk costs a check)")
	fs.StringVar(&f.recCache, "record-cache", "", "part of --cache-size kept for recently loaded records in Go memory (default: an eighth; 0: none)")
	fs.StringVar(&f.minFree, "min-free-space", "64MiB", "refuse commits (E) that would leave less free space than this on the database's file system")
	fs.BoolVar(&f.validateGarbage, "validate-garbage", false, "check every garbage candidate before the collector deletes it")
	fs.StringVar(&f.gcMode, "gc-mode", "continuous", "reference-count collector: continuous (rate limited), idle (only when no commit for a while) or manual")
	fs.IntVar(&f.gcRate, "gc-rate", engine.DefaultGCRate, "collector rate limit, objects per second")
	fs.DurationVar(&f.ckptEvery, "checkpoint-interval", engine.DefaultCheckpointEvery, "checkpoint after this much time (negative: never by time)")
	fs.StringVar(&f.ckptBytes, "checkpoint-log-bytes", "16MiB", "checkpoint after about this much committed data")
	fs.IntVar(&f.ckptCommits, "checkpoint-commits", 0, "checkpoint after this many commits (0: not by count)")
	fs.BoolVar(&f.ckptManual, "checkpoint-manual", false, "no background checkpoints (durusbdb checkpoint, or shutdown, does them)")
	fs.BoolVar(&f.keepLogs, "keep-logs", false, "keep Berkeley DB log files after checkpoints (catastrophic recovery, incremental backups: backup --incremental needs every log since the last backup)")
}

// serveCommand is `durusbdb serve`, the drop-in replacement for `durus -s`
// (PROTOCOL.md §13): it maps the flags to a service.Config and calls
// service.Serve.
func serveCommand() *command {
	c := &command{
		name:    "serve",
		summary: "serve a database to Durus clients (drop-in for durus -s)",
		usage:   "durusbdb serve --dir DIR [--create] [--host H] [--port P | --address PATH|@NAME] [flags]",
		example: "durusbdb serve --dir /var/lib/durusbdb --create --port 2972",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f serveFlags
		f.register(fs)
		return func(ctx context.Context, cio cmdIO, args []string) error {
			src := cio.src
			set := map[string]bool{}
			fs.Visit(func(fl *pflag.Flag) { set[fl.Name] = true })
			cfg, err := f.config(set)
			if err != nil {
				return err
			}
			if f.printCfg {
				printConfig(cio.stdout, fs, src)
				return nil
			}
			if err := noArgs(fs); err != nil {
				return err
			}
			if f.stop {
				return stopServer(ctx, cio, f, cfg.Listen)
			}
			if f.keepSysmon && cio.reexec != nil {
				if env, changed := sysmon.Environ(cio.environ); changed {
					// Before anything is opened: the new image starts over
					// with the same arguments and streams. It returns only
					// on failure, and serving goes on without.
					err := cio.reexec(env)
					fmt.Fprintf(cio.stderr, "durusbdb serve: %v; serving with sysmon as it is\n", err)
				}
			}
			if f.file != "" {
				return &usageError{"--file names a Durus file; durusbdb serves a database directory: import the file with 'durusbdb migrate' and use --dir"}
			}
			if f.repair {
				fmt.Fprintln(cio.stderr, "durusbdb serve: --repair has no effect: durusbdb recovers automatically")
			}
			if cfg.Engine.Backend, err = backendFor(cfg.Dir, cfg.Engine.Backend, cio.src["backend"]); err != nil {
				return err
			}
			cfg.Log.Stderr = cio.stderr
			cfg.Control = controlHandler
			cfg.ForceExit = func(string) { os.Exit(exitFailed) }
			return serveResult(cio, replListenError(cfg.Replication, service.Serve(ctx, cfg)))
		}
	}
	return c
}

// serveResult maps service.Serve's error to the command's: a bad Config
// is a usage error; a site an operator removed from its replication group
// exits 0 with the advice, so that a supervisor restarting on failure
// (docs/durusbdb.service: Restart=on-failure) does not start it again on
// its directory, where it would rejoin the group.
func serveResult(cio cmdIO, err error) error {
	var ce *service.ConfigError
	switch {
	case errors.As(err, &ce):
		return &usageError{ce.Msg}
	case errors.Is(err, engine.ErrSiteRemoved):
		fmt.Fprintf(cio.stderr, "durusbdb serve: stopped: %s\n", engine.SiteRemovedAdvice)
		return nil
	}
	return err
}

// stopServer is serve --stop: Q to the server at lc, waiting until it stops.
func stopServer(ctx context.Context, cio cmdIO, f serveFlags, lc server.ListenConfig) error {
	if f.tlsCert != "" {
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

// config maps the flags to a service.Config, refusing bad values (usage
// errors naming the flag). set holds the flags given explicitly.
func (f *serveFlags) config(set map[string]bool) (service.Config, error) {
	lc, err := f.listenConfig()
	if err != nil {
		return service.Config{}, err
	}
	scfg, err := f.serverConfig()
	if err != nil {
		return service.Config{}, err
	}
	eopts, err := f.engineOptions(set)
	if err != nil {
		return service.Config{}, err
	}
	if f.db.logFormat != "text" && f.db.logFormat != "json" {
		return service.Config{}, &usageError{fmt.Sprintf("--log-format must be text or json, not %q", f.db.logFormat)}
	}
	repl, err := f.repl.replication(set)
	if err != nil {
		return service.Config{}, err
	}
	hook, err := f.repl.roleHook()
	if err != nil {
		return service.Config{}, err
	}
	return service.Config{
		Dir:         f.db.dir,
		Listen:      lc,
		Server:      scfg,
		Engine:      eopts,
		Log:         service.LogConfig{File: f.logPath, Format: f.db.logFormat, Level: durusLevel(f.level)},
		MetricsAddr: f.metricsAddr,
		CPUProfile:  f.cpuProfile,
		ParentPID:   f.parentPID,
		Version:     Version,
		Replication: repl,
		RoleHook:    hook,
	}, nil
}

// listenConfig maps --host, --port, --address, --owner, --group, --umask.
func (f *serveFlags) listenConfig() (server.ListenConfig, error) {
	lc := server.ListenConfig{Host: f.host, Port: f.port, Address: f.address, Owner: f.owner, Group: f.group}
	if f.port < 0 || f.port > 65535 {
		return lc, &usageError{fmt.Sprintf("--port %d out of range", f.port)}
	}
	if f.umask != "" {
		u, err := strconv.ParseInt(f.umask, 0, 32)
		if err != nil || u < 0 || u > 0o777 {
			return lc, &usageError{fmt.Sprintf("--umask: bad value %q", f.umask)}
		}
		ui := int(u)
		lc.Umask = &ui
	}
	return lc, nil
}

// serverConfig maps the protocol limits and policies.
func (f *serveFlags) serverConfig() (server.Config, error) {
	var cfg server.Config
	quitPolicy, err := server.ParseQuitPolicy(f.allowQuit)
	if err != nil {
		return cfg, &usageError{err.Error()}
	}
	if f.maxPerAddr < 0 {
		return cfg, &usageError{"--max-connections-per-address must not be negative"}
	}
	if (f.tlsCert == "") != (f.tlsKey == "") || (f.tlsClientCA != "" && f.tlsCert == "") {
		return cfg, &usageError{"--tls-cert and --tls-key go together; --tls-client-ca needs them"}
	}
	var inflight int64
	if f.maxInflight != "" {
		if inflight, err = parseSize(f.maxInflight); err != nil || inflight <= 0 {
			return cfg, &usageError{fmt.Sprintf("--max-inflight: bad value %q", f.maxInflight)}
		}
	}
	var invalidMem int64
	if f.maxInvalidMemory != "" {
		if invalidMem, err = parseSize(f.maxInvalidMemory); err != nil || invalidMem <= 0 {
			return cfg, &usageError{fmt.Sprintf("--max-invalid-memory: bad value %q", f.maxInvalidMemory)}
		}
	}
	var unusedMem int64
	if f.maxUnusedMemory != "" {
		if unusedMem, err = parseSize(f.maxUnusedMemory); err != nil || unusedMem <= 0 {
			return cfg, &usageError{fmt.Sprintf("--max-unused-memory: bad value %q", f.maxUnusedMemory)}
		}
	}
	rate, err := parseSize(f.minWriteRate)
	if err != nil || rate < 0 {
		return cfg, &usageError{fmt.Sprintf("--min-write-rate: bad value %q", f.minWriteRate)}
	}
	if rate == 0 {
		rate = -1 // no bound
	}
	readRate, err := parseSize(f.minReadRate)
	if err != nil || readRate < 0 {
		return cfg, &usageError{fmt.Sprintf("--min-read-rate: bad value %q", f.minReadRate)}
	}
	if readRate == 0 {
		readRate = -1 // no bound
	}
	scanLimits, err := pickle.ParseLimits(f.verifyLimits)
	if err != nil {
		return cfg, &usageError{fmt.Sprintf("--verify-limits: %v", err)}
	}
	mc, err := parseSize(f.maxCommit)
	if err != nil || mc <= 0 || mc > server.MaxCommitLimit {
		return cfg, &usageError{fmt.Sprintf("--max-commit: bad value %q (1 to 4294967295 bytes)", f.maxCommit)}
	}
	if f.maxBulk <= 0 || f.maxConns <= 0 || f.maxInvalidRuns <= 0 || f.lease <= 0 || f.gcbytes < 0 {
		return cfg, &usageError{"--max-bulk, --max-connections, --max-invalid-runs and --commit-lease must be positive, --gcbytes not negative"}
	}
	if f.maxInvalid <= 0 || int64(f.maxInvalid) > server.MaxInvalidLimit {
		return cfg, &usageError{fmt.Sprintf("--max-invalid: bad value %d (1 to 4294967295 oids)", f.maxInvalid)}
	}
	cfg = server.Config{
		MaxBulk: f.maxBulk, MaxCommit: mc, CommitLease: f.lease, MaxConnections: f.maxConns,
		MaxInvalid: f.maxInvalid, MaxInvalidRuns: f.maxInvalidRuns, MaxInvalidMemory: invalidMem, MaxUnusedMemory: unusedMem, IdleTimeout: f.idle, NoQuit: f.noQuit, GCBytes: f.gcbytes,
		MaxInflight: inflight, InflightWait: f.inflightWait, MinWriteRate: rate, MinReadRate: readRate,
		AllowQuit: quitPolicy, MaxConnsPerAddress: f.maxPerAddr,
	}
	if f.verifyRefs {
		cfg.VerifyRefs = func(oid uint64, rec []byte) error { return scanLimits.CheckRefs(rec) }
	}
	if f.tlsCert != "" && !f.stop {
		if cfg.TLS, err = server.TLSConfig(f.tlsCert, f.tlsKey, f.tlsClientCA); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// engineOptions maps the storage flags.
func (f *serveFlags) engineOptions(set map[string]bool) (engine.Options, error) {
	dur, err := kv.ParseDurability(f.durability)
	if err != nil {
		return engine.Options{}, &usageError{"--durability: " + err.Error()}
	}
	cache, err := parseSize(f.db.cacheSize)
	if err != nil {
		return engine.Options{}, &usageError{"--cache-size: " + err.Error()}
	}
	grace := f.gcGrace
	if set["gc-grace"] && grace == 0 {
		grace = -1 // engine: negative means no grace period
	}
	if f.access != "btree" && f.access != "hash" {
		return engine.Options{}, &usageError{fmt.Sprintf("--access must be btree or hash, not %q", f.access)}
	}
	ps, err1 := parseSize(f.pageSize)
	free, err2 := parseSize(f.minFree)
	cb, err3 := parseSize(f.ckptBytes)
	mode, err4 := parseGCMode(f.gcMode)
	var rc int64
	var err5 error
	if f.recCache != "" {
		if rc, err5 = parseSize(f.recCache); err5 == nil && rc == 0 {
			rc = -1 // engine: negative disables the record cache
		}
	}
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return engine.Options{}, &usageError{err.Error()}
	}
	if free == 0 {
		free = -1 // engine: negative disables the reserve
	}
	return engine.Options{
		Create: f.create, ReadOnly: f.readonly, Backend: f.db.backend, Access: f.access,
		PageSize: int(ps), NoPageChecksums: !f.pageChecksums, CacheSize: cache, RecordCache: rc, Durability: dur, GCGrace: grace,
		GC:              engine.GCPolicy{Mode: mode, Rate: f.gcRate},
		ValidateGarbage: f.validateGarbage, MinFreeSpace: free,
		Checkpoint: engine.CheckpointPolicy{Every: f.ckptEvery, LogBytes: cb, Commits: f.ckptCommits,
			Manual: f.ckptManual, KeepLogs: f.keepLogs},
	}, nil
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
