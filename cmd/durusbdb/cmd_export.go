package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/progress"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

func exportCommand() *command {
	c := &command{
		name:    "export",
		summary: "write every record to a Durus FileStorage file (Shelf, or DFS20) that durus -s serves",
		usage:   "durusbdb export --dir DIR [--format shelf|dfs20] [--force] OUT",
		example: "durusbdb export --dir /var/lib/durusbdb backup.durus && durus -s --file backup.durus",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		format := fs.String("format", "shelf", "shelf (Durus 3.8+ default) or dfs20")
		force := fs.Bool("force", false, "replace an existing OUT file")
		return func(ctx context.Context, cio cmdIO, args []string) error {
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
			out := fs.Arg(0)
			if f.dir != "" && dbdir.Contains(f.dir, out) {
				return &usageError{fmt.Sprintf("the output %s must not be inside the database directory %s", out, f.dir)}
			}
			if _, serr := os.Lstat(out); serr == nil && !*force {
				return fmt.Errorf("filestorage: export to %s: %w", out, filestorage.ErrExists)
			}
			db, lv, done, err := f.openTool(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
			if errors.Is(err, kv.ErrInUse) {
				// The server exports; this process writes OUT (see control).
				return routeLive(ctx, cio, f.dir, c.name, args, err)
			}
			if err != nil {
				return err
			}
			defer done()
			target := out
			if lv != nil {
				// In the server: write a staging file in the database
				// directory, then stream it to the client, which writes OUT.
				tmp, err := control.TempDir(db.Dir())
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				target = filepath.Join(tmp, "export")
			}
			n, err := db.Size()
			if err != nil {
				return err
			}
			bar := progress.New(cio.stderr, log, "export "+out, "records", int64(n))
			st, err := write(target, filestorage.WriteOptions{Force: *force, Log: log}, func(yield func(uint64, []byte) error) error {
				return db.Scan(ctx, func(oid uint64, rec []byte) error {
					bar.Add(1, int64(len(rec)))
					return yield(oid, rec)
				})
			})
			bar.Done()
			if err != nil {
				return err
			}
			if lv != nil {
				if err := lv.resp.SendFile(ctx, target, control.FileHeader{Path: out, Replace: *force, Mode: 0o644}); err != nil {
					return err
				}
				st.Path = out
			}
			fmt.Fprintf(cio.stdout, "exported %d records (%.1f MB) to %s, %d bytes (%s)\n", st.Records, float64(st.RecordBytes)/1e6, st.Path, st.Size, st.Format)
			return nil
		}
	}
	return c
}
