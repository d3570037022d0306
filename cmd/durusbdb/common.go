package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/recovery"
	"github.com/spf13/pflag"
)

// dbFlags are the flags every offline command shares to open a database.
type dbFlags struct {
	dir       string
	backend   string
	cacheSize string
	logFormat string
}

func (f *dbFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.dir, "dir", "", "database directory (required)")
	fs.StringVar(&f.backend, "backend", "", "bdb or leveldb for a new database (default: bdb when compiled in); existing directories are detected")
	fs.StringVar(&f.cacheSize, "cache-size", "64MiB", "cache size (bytes, or with KiB/MiB/GiB)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
}

// logger builds the slog logger the flags ask for, writing to w.
func (f *dbFlags) logger(w io.Writer) (*slog.Logger, error) {
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, &usageError{fmt.Sprintf("--log-format must be text or json, not %q", f.logFormat)}
}

// open checks the directory and opens the engine with the shared flags.
// With opts.Create a missing directory is created. The backend of an
// existing database is detected: --backend from DURUSBDB_BACKEND or a
// config file is then only for new databases, and a conflicting
// --backend on the command line is a usage error.
func (f *dbFlags) open(ctx context.Context, cio cmdIO, opts engine.Options) (*engine.DB, error) {
	if f.dir == "" {
		return nil, &usageError{"--dir is required"}
	}
	if opts.Create {
		if err := os.MkdirAll(f.dir, 0o755); err != nil {
			return nil, fmt.Errorf("--create: %w", err)
		}
	}
	fi, err := os.Stat(f.dir)
	if err != nil {
		return nil, fmt.Errorf("database directory %s: %w", f.dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("database directory %s is not a directory", f.dir)
	}
	cache, err := parseSize(f.cacheSize)
	if err != nil {
		return nil, &usageError{"--cache-size: " + err.Error()}
	}
	log, err := f.logger(cio.stderr)
	if err != nil {
		return nil, err
	}
	if opts.Backend, err = backendFor(f.dir, f.backend, cio.src["backend"]); err != nil {
		return nil, err
	}
	opts.CacheSize = cache
	if opts.RecordCache == 0 {
		// The tools scan and write; none serves loads, so the whole cache
		// goes to the backend.
		opts.RecordCache = -1
	}
	opts.Logger = log
	return engine.Open(ctx, f.dir, opts)
}

// backendFor is the backend to open dir with, given --backend (want, from
// o): the detected backend of an existing database wins over a value from
// the environment or a config file; a conflicting --backend on the command
// line is a usage error naming both.
func backendFor(dir, want string, o origin) (string, error) {
	if want == "" {
		return "", nil
	}
	found, err := backend.Detect(dir)
	if err != nil || found == "" || found == want {
		return want, nil // a new database, or the engine reports the layout
	}
	if o.kind == srcFlag {
		return "", &usageError{fmt.Sprintf("--backend %s, but %s holds a %s database (an existing database's backend is detected: drop --backend)", want, dir, found)}
	}
	return "", nil
}

// parseSize parses "1048576", "64MiB", "1GiB", "512KiB" (also KB/MB/GB as powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 67108864 or 64MiB)", s)
	}
	return n * mult, nil
}

// noArgs refuses positional arguments.
func noArgs(fs *pflag.FlagSet) error {
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// recoveryOptions parses the --cache-size and --log-format of the tools
// over package recovery (backup, restore, recover); progress goes to stderr.
func recoveryOptions(cacheSize, logFormat string, stderr io.Writer) (recovery.Options, error) {
	cache, err := parseSize(cacheSize)
	if err != nil {
		return recovery.Options{}, &usageError{"--cache-size: " + err.Error()}
	}
	log, err := (&dbFlags{logFormat: logFormat}).logger(stderr)
	if err != nil {
		return recovery.Options{}, err
	}
	return recovery.Options{Logger: log, Progress: stderr, CacheSize: cache}, nil
}
