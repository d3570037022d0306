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

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/progress"
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
		fs.BoolVar(&m.force, "force", false, "replace the contents of a non-empty database; read a source locked by a running Durus writer as a snapshot")
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
// database is built in a staging directory beside it and moved in only
// once the import is complete, so that a failed migrate leaves the
// directory as it was (a failed --force import into an existing database
// leaves it marked, and serve refuses it until migrate is run again).
func (m *migration) run(ctx context.Context, cio cmdIO, file string) error {
	log, err := m.db.logger(cio.stderr)
	if err != nil {
		return err
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
	staging, err := m.stage(target)
	if err != nil {
		return err
	}
	open := m.db
	if staging != "" {
		defer os.RemoveAll(staging)
		open.dir = staging
	}
	db, err := open.open(ctx, cio, engine.Options{Create: m.create, ForImport: m.force, GC: engine.GCPolicy{Mode: engine.GCManual}})
	if err != nil {
		return err
	}
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
	if err == nil && staging != "" {
		err = moveInto(staging, target)
	}
	if err != nil {
		if staging != "" {
			err = fmt.Errorf("%w (%s left as it was)", err, target)
		}
		return fmt.Errorf("migrate %s into %s: %w", what, target, err)
	}
	m.report(cio.stdout, what, st)
	return nil
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

// stage returns a new staging directory beside target when migrate
// creates a new database (target missing or empty, --create), else "".
func (m *migration) stage(target string) (string, error) {
	if !m.create {
		return "", nil
	}
	if kind, err := backend.Detect(target); err == nil && kind != "" || err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil // a database, or a layout the engine reports
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return "", fmt.Errorf("--dir %s: %w", target, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return "", fmt.Errorf("--create: %w", err)
	}
	staging, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".migrate-")
	if err != nil {
		return "", fmt.Errorf("migrate: staging directory beside %s: %w", target, err)
	}
	return staging, nil
}

// moveInto moves every entry of staging into target (created if
// missing), then syncs target.
func moveInto(staging, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("--create: %w", err)
	}
	ents, err := os.ReadDir(staging)
	if err != nil {
		return fmt.Errorf("staging directory: %w", err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(staging, e.Name()), filepath.Join(target, e.Name())); err != nil {
			return fmt.Errorf("moving the new database in: %w", err)
		}
	}
	d, err := os.Open(target)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", target, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", target, err)
	}
	return nil
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
