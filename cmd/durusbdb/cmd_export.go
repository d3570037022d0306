package main

import (
	"context"
	"fmt"

	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/progress"
)

func exportCommand() *command {
	c := &command{
		name:    "export",
		summary: "write every record to a Durus FileStorage file (Shelf, or DFS20) that durus -s serves",
		usage:   "durusbdb export --dir DIR [--format shelf|dfs20] [--force] OUT",
		example: "durusbdb export --dir /var/lib/durusbdb backup.durus && durus -s --file backup.durus",
	}
	c.run = func(ctx context.Context, cio cmdIO, args []string) error {
		var f dbFlags
		fs := newFlagSet(c, cio)
		f.register(fs)
		format := fs.String("format", "shelf", "shelf (Durus 3.8+ default) or dfs20")
		force := fs.Bool("force", false, "replace an existing OUT file")
		if err := parseFlags(c, cio, fs, args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return &usageError{"give the output file"}
		}
		write := filestorage.WriteShelf
		switch *format {
		case "shelf":
		case "dfs20":
			write = filestorage.WriteDFS20
		default:
			return &usageError{fmt.Sprintf("--format must be shelf or dfs20, not %q", *format)}
		}
		log, err := f.logger(cio.stderr)
		if err != nil {
			return err
		}
		db, err := f.open(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
		if err != nil {
			return err
		}
		defer db.Close()
		n, err := db.Size()
		if err != nil {
			return err
		}
		bar := progress.New(cio.stderr, log, "export "+fs.Arg(0), "records", int64(n))
		st, err := write(fs.Arg(0), filestorage.WriteOptions{Force: *force}, func(yield func(uint64, []byte) error) error {
			return db.Scan(ctx, func(oid uint64, rec []byte) error {
				bar.Add(1, int64(len(rec)))
				return yield(oid, rec)
			})
		})
		bar.Done()
		if err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "exported %d records (%.1f MB) to %s, %d bytes (%s)\n", st.Records, float64(st.RecordBytes)/1e6, st.Path, st.Size, st.Format)
		return nil
	}
	return c
}
