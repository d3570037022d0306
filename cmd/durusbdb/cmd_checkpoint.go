package main

import (
	"context"
	"fmt"

	"github.com/durusbdb/durusbdb/engine"
)

func checkpointCommand() *command {
	c := &command{
		name:    "checkpoint",
		summary: "write a checkpoint and remove log files no longer needed (unless --keep-logs)",
		usage:   "durusbdb checkpoint --dir DIR [--keep-logs]",
		example: "durusbdb checkpoint --dir /var/lib/durusbdb",
	}
	c.run = func(ctx context.Context, cio cmdIO, args []string) error {
		var f dbFlags
		fs := newFlagSet(c, cio)
		f.register(fs)
		keep := fs.Bool("keep-logs", false, "keep log files (for catastrophic recovery and archiving; backups are always full)")
		if err := parseFlags(c, cio, fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		db, err := f.open(ctx, cio, engine.Options{GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true, KeepLogs: *keep}})
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.Checkpoint(ctx); err != nil {
			return err
		}
		fmt.Fprintf(cio.stdout, "checkpoint of %s done\n", f.dir)
		return nil
	}
	return c
}
