package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/progress"
	"github.com/durusbdb/durusbdb/internal/staging"
	"github.com/spf13/pflag"
)

// maxStdinRecord bounds one record read from --stdin before it is allocated.
const maxStdinRecord = 1 << 30

func migrateCommand() *command {
	c := &command{
		name:    "migrate",
		summary: "import a Durus FileStorage (Shelf or DFS20) file, or a record stream on stdin",
		usage:   "durusbdb migrate --dir DIR [--create] [--force] [--ignore-incomplete-tail] (FILE | --stdin)",
		example: "durusbdb migrate --dir /var/lib/durusbdb --create app.durus",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var m migration
		m.db.register(fs)
		fs.BoolVar(&m.create, "create", false, "create the database (and the directory if missing) if the directory is empty")
		fs.BoolVar(&m.force, "force", false, "replace a non-empty database (built beside it and swapped in when complete: needs the space of both meanwhile); read a source locked by a running Durus writer as a snapshot")
		fs.BoolVar(&m.ignoreTail, "ignore-incomplete-tail", false, "import everything before a truncated final transaction")
		fs.BoolVar(&m.stdin, "stdin", false, "read records from stdin: repeated (int4 big-endian length, record)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if m.stdin == (fs.NArg() == 1) || fs.NArg() > 1 {
				return &usageError{"give exactly one source: a FileStorage file or --stdin"}
			}
			return m.run(ctx, cio, fs.Arg(0))
		}
	}
	return c
}

// migration is one `durusbdb migrate`.
type migration struct {
	db                               dbFlags
	create, force, ignoreTail, stdin bool
}

// run imports file (or stdin) into the database directory. A new
// database is built in a staging directory beside it (.DIR.migrate-*)
// and moved in only once the import is complete, so that a failed
// migrate leaves the directory as it was: for a new database (--create)
// and for --force over an existing one, which stays open (no server can
// start on it meanwhile) and is swapped out only on success.
func (m *migration) run(ctx context.Context, cio cmdIO, file string) error {
	log, err := m.db.logger(cio.stderr)
	if err != nil {
		return err
	}
	if file != "" && m.db.dir != "" && dbdir.Contains(m.db.dir, file) {
		// --force swaps the directory out and removes it: the source
		// would go with it.
		return &usageError{fmt.Sprintf("the source %s is inside the database directory %s, which the import replaces: move it out first", file, m.db.dir)}
	}
	what, src, total, done, err := m.source(ctx, cio, file, log)
	if err != nil {
		return err
	}
	defer done()
	target := m.db.dir
	if target == "" {
		return &usageError{"--dir is required"}
	}
	imp := func(db *engine.DB) (engine.ImportStats, error) {
		return m.importDB(ctx, cio, db, what, src, total, log)
	}
	if m.create || m.force {
		// A migrate killed while it moved a new database into an
		// existing directory left part of it there: remove it first.
		if _, err := staging.Settle(target, log); err != nil {
			return fmt.Errorf("migrate %s into %s: %w", what, target, err)
		}
	}
	var st engine.ImportStats
	switch kind, derr := backend.Detect(target); {
	case m.force && derr == nil && kind != "":
		st, err = m.replace(ctx, cio, target, kind, log, imp)
	case m.create && (derr == nil && kind == "" || errors.Is(derr, fs.ErrNotExist)):
		st, err = m.createStaged(ctx, cio, target, log, imp)
	default: // an empty database, or one Import refuses, or a layout the engine reports
		var db *engine.DB
		if db, err = m.db.open(ctx, cio, engine.Options{Create: m.create, ForImport: m.force, GC: engine.GCPolicy{Mode: engine.GCManual}}); err == nil {
			st, err = imp(db)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate %s into %s: %w", what, target, err)
	}
	m.report(cio.stdout, what, st)
	return nil
}

// importDB imports src into db with a progress bar, then closes db.
func (m *migration) importDB(ctx context.Context, cio cmdIO, db *engine.DB, what string, src func(func([]byte) error) error, total int64, log *slog.Logger) (engine.ImportStats, error) {
	bar := progress.New(cio.stderr, log, "migrate "+what, "bytes", total)
	var last int64
	st, err := db.Import(ctx, src, engine.ImportOptions{Force: m.force, Progress: func(records, bytes int64) {
		bar.Add(bytes-last, 0)
		last = bytes
	}})
	if err == nil && total > last {
		bar.Add(total-last, 0) // the file's tail (index, padding) counts as read
	}
	bar.Done()
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing the database: %w", cerr)
	}
	return st, err
}

// newStaging removes the staging directories of killed migrates beside
// target, warns about databases a crashed --force left aside, and makes
// the staging directory of this migrate: beside target when it is to be
// replaced (--force swaps the two directories) or does not exist, inside
// it when it exists to be filled (staging.For: a mount point).
func (m *migration) newStaging(target string, replace bool, log *slog.Logger) (*staging.Dir, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, fmt.Errorf("--dir %s: %w", target, err)
	}
	for _, p := range staging.Replaced(abs) {
		log.Warn("a database an interrupted `migrate --force` moved aside is still there; once "+target+" is checked, remove it: rm -rf "+p, "path", p)
	}
	prefix := "." + filepath.Base(abs) + ".migrate-"
	var sd *staging.Dir
	if replace {
		sd, err = staging.New(filepath.Dir(abs), prefix, "migrate", 0o755, log)
	} else {
		sd, err = staging.For(abs, prefix, "migrate", 0o755, log)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: staging directory for %s: %w", target, err)
	}
	return sd, nil
}

// createStaged builds a new database in a staging directory beside
// target (missing or empty, --create; inside it when it exists) and moves
// it in on success.
func (m *migration) createStaged(ctx context.Context, cio cmdIO, target string, log *slog.Logger, imp func(*engine.DB) (engine.ImportStats, error)) (engine.ImportStats, error) {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(target)), 0o755); err != nil {
		return engine.ImportStats{}, fmt.Errorf("--create: %w", err)
	}
	sd, err := m.newStaging(target, false, log)
	if err != nil {
		return engine.ImportStats{}, err
	}
	defer sd.Release()
	open := m.db
	open.dir = filepath.Join(sd.Path, "db")
	db, err := open.open(ctx, cio, engine.Options{Create: true, GC: engine.GCPolicy{Mode: engine.GCManual}})
	if err != nil {
		return engine.ImportStats{}, fmt.Errorf("%w (%s left as it was)", err, target)
	}
	st, err := imp(db)
	if err == nil {
		err = staging.MoveInto(open.dir, target, dbdir.MoveRank)
	}
	if err != nil {
		return st, fmt.Errorf("%w (%s left as it was)", stagedCause(err), target)
	}
	return st, nil
}

// stagedCause is the error of an import into a staging directory, which
// is removed whatever it holds: the cause alone, without what the engine
// says became of the staging directory's records.
func stagedCause(err error) error {
	var ie *engine.ImportError
	if errors.As(err, &ie) {
		return fmt.Errorf("import: %w", ie.Cause)
	}
	return err
}

// replace is --force over an existing database (of backend kind): the
// new one is built in a staging directory while the old one stays open
// (a server cannot start on it), and swapped in only when complete; the
// old one is removed then. Both are on disk meanwhile.
func (m *migration) replace(ctx context.Context, cio cmdIO, target, kind string, log *slog.Logger, imp func(*engine.DB) (engine.ImportStats, error)) (engine.ImportStats, error) {
	if staging.MountPoint(target) {
		return engine.ImportStats{}, fmt.Errorf("--force: %s is a mount point, which cannot be swapped with a new directory; migrate --create into an empty directory (this one once its files are removed, or another) instead (%s left as it was)", target, target)
	}
	old, err := m.db.open(ctx, cio, engine.Options{ForImport: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
	if err != nil {
		return engine.ImportStats{}, err
	}
	defer func() {
		if old != nil {
			old.Close()
		}
	}()
	// A symlinked DIR stays a symlink: the directory it names is replaced.
	if target, err = filepath.EvalSymlinks(target); err != nil {
		return engine.ImportStats{}, fmt.Errorf("--dir: %w", err)
	}
	sd, err := m.newStaging(target, true, log)
	if err != nil {
		return engine.ImportStats{}, err
	}
	defer sd.Release()
	open := m.db
	open.dir, open.backend = filepath.Join(sd.Path, "db"), kind
	if err := os.Mkdir(open.dir, 0o755); err != nil {
		return engine.ImportStats{}, fmt.Errorf("migrate: %w", err)
	}
	// The operator's Berkeley DB configuration applies to the new
	// environment from its creation.
	if err := carryOver(target, open.dir, func(name string) bool { return name == "DB_CONFIG" }, copyFile); err != nil {
		return engine.ImportStats{}, err
	}
	db, err := open.open(ctx, cio, engine.Options{Create: true, GC: engine.GCPolicy{Mode: engine.GCManual}})
	if err != nil {
		return engine.ImportStats{}, fmt.Errorf("%w (%s left as it was)", err, target)
	}
	st, err := imp(db)
	err = stagedCause(err)
	// Closed before the swap: a backend may write by path as it closes.
	cerr := old.Close()
	old = nil
	if err == nil && cerr != nil {
		err = fmt.Errorf("closing the database being replaced: %w", cerr)
	}
	if err == nil {
		err = staging.Replace(open.dir, target) // open.dir then holds the old database, which Release removes
	}
	if err != nil {
		return st, fmt.Errorf("%w (%s left as it was)", err, target)
	}
	// Text logs and dotfiles beside the database are the operator's.
	if err := carryOver(open.dir, target, keptBeside, os.Rename); err != nil {
		log.Warn("migrate: files beside the old database not moved over; they are removed with it", "err", err)
	}
	return st, nil
}

// keptBeside reports whether a file named name beside a database is the
// operator's (a text log, a dotfile) and moves to the replacing one.
func keptBeside(name string) bool {
	return strings.HasSuffix(name, ".log.txt") || strings.HasPrefix(name, ".")
}

// carryOver applies move (os.Rename or copyFile) to every regular file of
// from whose name keep accepts and that to does not hold.
func carryOver(from, to string, keep func(string) bool, move func(src, dst string) error) error {
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	for _, e := range ents {
		dst := filepath.Join(to, e.Name())
		if !e.Type().IsRegular() || !keep(e.Name()) {
			continue
		}
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := move(filepath.Join(from, e.Name()), dst); err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
	}
	return nil
}

// copyFile copies the regular file src to dst, with its mode.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, fi.Mode().Perm())
}

// source opens the records to import: file, or stdin with --stdin. It
// returns a name for messages, the records, their total size (0 if not
// known) and a function to call when done.
func (m *migration) source(ctx context.Context, cio cmdIO, file string, log *slog.Logger) (string, func(func([]byte) error) error, int64, func(), error) {
	if m.stdin {
		return "stdin", func(yield func([]byte) error) error { return readFrames(cio.stdin, yield) }, 0, func() {}, nil
	}
	r, err := filestorage.Open(file, filestorage.ReadOptions{IgnoreIncompleteTail: m.ignoreTail, Force: m.force})
	if err != nil {
		return "", nil, 0, nil, err
	}
	if r.Forced() {
		log.Warn("source is locked by a running Durus writer: importing the bytes present now (a snapshot)", "file", file)
	}
	done := func() {
		if sk := r.Stats().Skipped; sk != nil {
			log.Warn("incomplete final transaction skipped (--ignore-incomplete-tail)", "file", file, "offset", sk.Offset, "bytes", sk.Bytes, "damage", sk.Reason)
		}
		r.Close()
	}
	return file, func(yield func([]byte) error) error { return r.Records(ctx, yield) }, r.Size(), done, nil
}

// report prints the import's figures and warnings.
func (m *migration) report(w io.Writer, what string, st engine.ImportStats) {
	fmt.Fprintf(w, "migrated %s: %d records read, %d objects stored, %.1f MB, max oid %d, %d garbage candidates, %s (%.1f MB/s)\n",
		what, st.Records, st.Objects, float64(st.Bytes)/1e6, st.MaxOID, st.Garbage, st.Duration.Round(1e6),
		float64(st.Bytes)/1e6/max(st.Duration.Seconds(), 1e-9))
	if st.MissingRoot {
		fmt.Fprintln(w, "warning: the source has no root object (oid 0)")
	}
	if st.Dangling > 0 {
		fmt.Fprintf(w, "warning: %d dangling references imported unchanged (`durusbdb check` lists them), e.g.", st.Dangling)
		for _, d := range st.DanglingRefs {
			fmt.Fprintf(w, " oid %d refers to missing oid %d;", d.Referrer, d.Missing)
		}
		fmt.Fprintln(w)
	}
}

// readFrames reads (int4 length, record) frames until a clean end of input.
func readFrames(r io.Reader, yield func([]byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [4]byte
	var off int64
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("stdin offset %d: truncated frame length: %w", off, err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > maxStdinRecord {
			return fmt.Errorf("stdin offset %d: record length %d above the %d limit", off, n, maxStdinRecord)
		}
		// Grow with the bytes that arrive, never by the length claimed.
		rec, err := io.ReadAll(io.LimitReader(br, int64(n)))
		if err == nil && len(rec) < int(n) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("stdin offset %d: truncated record of %d bytes: %w", off, n, err)
		}
		if err := yield(rec); err != nil {
			return err
		}
		off += 4 + int64(n)
	}
}
