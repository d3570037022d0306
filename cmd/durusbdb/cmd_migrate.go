package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"io"

	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/progress"
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
		var f dbFlags
		f.register(fs)
		create := fs.Bool("create", false, "create the database if the directory is empty")
		force := fs.Bool("force", false, "replace the contents of a non-empty database; read a source locked by a running Durus writer as a snapshot")
		ignoreTail := fs.Bool("ignore-incomplete-tail", false, "import everything before a truncated final transaction")
		stdin := fs.Bool("stdin", false, "read records from stdin: repeated (int4 big-endian length, record)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if *stdin == (fs.NArg() == 1) || fs.NArg() > 1 {
				return &usageError{"give exactly one source: a FileStorage file or --stdin"}
			}
			log, err := f.logger(cio.stderr)
			if err != nil {
				return err
			}
			var src func(yield func(rec []byte) error) error
			var total int64
			var what string
			if *stdin {
				what = "stdin"
				src = func(yield func([]byte) error) error { return readFrames(cio.stdin, yield) }
			} else {
				what = fs.Arg(0)
				r, err := filestorage.Open(what, filestorage.ReadOptions{IgnoreIncompleteTail: *ignoreTail, Force: *force})
				if err != nil {
					return err
				}
				defer r.Close()
				total = r.Size()
				if r.Forced() {
					log.Warn("source is locked by a running Durus writer: importing the bytes present now (a snapshot)", "file", what)
				}
				src = func(yield func([]byte) error) error { return r.Records(ctx, yield) }
				defer func() {
					if sk := r.Stats().Skipped; sk != nil {
						log.Warn("incomplete final transaction skipped", "file", what, "skip", fmt.Sprint(*sk))
					}
				}()
			}
			db, err := f.open(ctx, cio, engine.Options{Create: *create, ForImport: *force, GC: engine.GCPolicy{Mode: engine.GCManual}})
			if err != nil {
				return err
			}
			defer db.Close()
			bar := progress.New(cio.stderr, log, "migrate "+what, "bytes", total)
			var last int64
			st, err := db.Import(ctx, src, engine.ImportOptions{Force: *force, Progress: func(records, bytes int64) {
				bar.Add(bytes-last, 0)
				last = bytes
			}})
			bar.Done()
			if err != nil {
				return fmt.Errorf("migrate %s into %s: %w", what, f.dir, err)
			}
			fmt.Fprintf(cio.stdout, "migrated %s: %d records read, %d objects stored, %.1f MB, max oid %d, %d garbage candidates, %s (%.1f MB/s)\n",
				what, st.Records, st.Objects, float64(st.Bytes)/1e6, st.MaxOID, st.Garbage, st.Duration.Round(1e6),
				float64(st.Bytes)/1e6/max(st.Duration.Seconds(), 1e-9))
			if st.MissingRoot {
				fmt.Fprintln(cio.stdout, "warning: the source has no root object (oid 0)")
			}
			if st.Dangling > 0 {
				fmt.Fprintf(cio.stdout, "warning: %d dangling references imported unchanged, e.g.", st.Dangling)
				for _, d := range st.DanglingRefs {
					fmt.Fprintf(cio.stdout, " %v", d)
				}
				fmt.Fprintln(cio.stdout)
			}
			return nil
		}
	}
	return c
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
