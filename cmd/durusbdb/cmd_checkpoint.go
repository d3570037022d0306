package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

func checkpointCommand() *command {
	c := &command{
		name:    "checkpoint",
		summary: "write a checkpoint and remove log files no longer needed (unless --keep-logs)",
		usage:   "durusbdb checkpoint --dir DIR [--keep-logs]",
		example: "durusbdb checkpoint --dir /var/lib/durusbdb",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		keep := fs.Bool("keep-logs", false, "keep log files (for catastrophic recovery and archiving; backups are always full)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			if kind, _ := backend.Detect(f.dir); kind == backend.LevelDB && *keep {
				return &usageError{fmt.Sprintf("--keep-logs applies to Berkeley DB's log files; %s holds a LevelDB database, which keeps no log files for archiving", f.dir)}
			}
			db, lv, done, err := f.openTool(ctx, cio, engine.Options{GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true, KeepLogs: *keep}})
			if errors.Is(err, kv.ErrInUse) {
				return routeLive(ctx, cio, f.dir, c.name, args, err)
			}
			if err != nil {
				return err
			}
			defer done()
			if lv != nil && *keep {
				// The server's policy may remove logs; this checkpoint keeps them.
				err = db.Store().Checkpoint(ctx, false)
			} else {
				err = db.Checkpoint(ctx)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cio.stdout, "checkpoint of %s done\n", f.dir)
			return nil
		}
	}
	return c
}
