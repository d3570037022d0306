// Package backend chooses and opens the kv.Store behind a database
// directory. New databases take the backend the caller names (default bdb
// when compiled in); existing directories are recognised by their contents
// (FORMAT.md §5: meta.db → Berkeley DB, CURRENT → LevelDB). Which backends
// exist is decided at build time: bdb needs `-tags bdb` and libdb.
package backend

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"

	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

// Names of the backends.
const (
	BDB     = "bdb"
	LevelDB = "leveldb"
)

// ErrNotCompiled is returned when a directory or option needs a backend this
// binary was built without.
var ErrNotCompiled = errors.New("backend not compiled in")

// ErrUnknownLayout is returned for a non-empty directory that holds neither
// backend's files.
var ErrUnknownLayout = errors.New("unknown database layout")

type opener func(kv.Options) (kv.Store, error)

// openers lists the compiled-in backends in order of preference.
func openers() map[string]opener {
	m := map[string]opener{LevelDB: openLevelDB}
	if o := bdbOpener(); o != nil {
		m[BDB] = o
	}
	return m
}

// Compiled returns the names of the backends this binary has, preferred first.
func Compiled() []string {
	if bdbOpener() != nil {
		return []string{BDB, LevelDB}
	}
	return []string{LevelDB}
}

// Default is the backend used for new databases when none is named.
func Default() string { return Compiled()[0] }

// Detect reports which backend's files dir holds: "bdb", "leveldb", or ""
// for an empty directory (or one holding only files we may ignore).
// Anything else is ErrUnknownLayout, naming the directory and its files.
func Detect(dir string) (string, error) {
	l, err := dbdir.Detect(dir)
	if errors.Is(err, syscall.ENOTDIR) {
		return "", fmt.Errorf("backend: %s is not a directory (a database is a directory that must already exist)", dir)
	}
	if err != nil {
		return "", fmt.Errorf("backend: database directory %s: %w", dir, err)
	}
	switch l.Kind {
	case dbdir.BDB:
		return BDB, nil
	case dbdir.LevelDB:
		return LevelDB, nil
	case dbdir.Empty:
		return "", nil
	}
	return "", fmt.Errorf("backend: %s holds %s, which is not a durusbdb layout (supported: durusbdb/1 on Berkeley DB with meta.db, or on LevelDB with CURRENT): %w",
		dir, l.List(), ErrUnknownLayout)
}

// Open opens (or, with opts.Create, creates) the store in opts.Dir. kind
// names the backend for a new database ("" = Default()); for an existing
// directory it must be "" or match what is there. It returns the backend used.
// A writable open removes the staging directories that killed tools
// (restore, copy, migrate, backup into an existing directory) left
// inside opts.Dir: they hold a whole database's worth of files nobody
// would otherwise see.
func Open(opts kv.Options, kind string) (kv.Store, string, error) {
	found, err := Detect(opts.Dir)
	if err != nil {
		return nil, "", err
	}
	if !opts.ReadOnly {
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		staging.RemoveStaleInside(opts.Dir, log)
	}
	switch {
	case found == "" && !opts.Create:
		return nil, "", fmt.Errorf("backend: %s holds no database (create one with --create): %w", opts.Dir, kv.ErrNotDB)
	case found == "":
		if kind == "" {
			kind = Default()
		}
	case kind != "" && kind != found:
		return nil, "", fmt.Errorf("backend: %s holds a %s database, not %s", opts.Dir, found, kind)
	default:
		kind = found
	}
	open, ok := openers()[kind]
	if !ok {
		if kind == BDB {
			return nil, "", fmt.Errorf("backend: %s: this directory holds a Berkeley DB database; this durusbdb was built without -tags bdb: %w", opts.Dir, ErrNotCompiled)
		}
		return nil, "", fmt.Errorf("backend: unknown backend %q (compiled in: %s): %w", kind, strings.Join(Compiled(), ", "), ErrNotCompiled)
	}
	s, err := open(opts)
	if err != nil {
		return nil, "", err
	}
	return s, kind, nil
}
