package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/spf13/pflag"
	"os"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/recovery"
)

func checkCommand() *command {
	c := &command{
		name:    "check",
		summary: "verify a database: backend files, references, refcounts, size counter, GC queue",
		usage:   "durusbdb check --dir DIR [--repair]",
		example: "durusbdb check --dir /var/lib/durusbdb && echo clean",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		repair := fs.Bool("repair", false, "fix counters and queues (never deletes a reachable object)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			// 1. The backend's own verification (db_verify's DB->verify for
			// Berkeley DB; table, log and MANIFEST checksums for LevelDB).
			if f.dir == "" {
				return &usageError{"--dir is required"}
			}
			verified := ""
			if liveFrom(ctx) == nil {
				if fi, err := os.Stat(f.dir); err != nil || !fi.IsDir() {
					if err == nil {
						err = fmt.Errorf("is not a directory")
					}
					return fmt.Errorf("database directory %s: %w", f.dir, err)
				}
				nfiles, verr := recovery.VerifyBackend(f.dir)
				if errors.Is(verr, kv.ErrInUse) {
					return routeLive(ctx, cio, f.dir, c.name, args, verr)
				}
				if verr != nil {
					if kind, _ := backend.Detect(f.dir); kind == backend.LevelDB {
						// LevelDB's verification does not take the lock: a
						// server compacting meanwhile can fail it. Then the
						// server checks.
						if _, _, done, err := f.openTool(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}}); errors.Is(err, kv.ErrInUse) {
							return routeLive(ctx, cio, f.dir, c.name, args, err)
						} else if err == nil {
							done()
						}
					}
					if errors.Is(verr, kv.ErrCorrupt) {
						fmt.Fprintf(cio.stdout, "problem: backend verification: %v\n", verr)
						return &exitError{exitProblems, fmt.Errorf("backend verification of %s failed", f.dir)}
					}
					return verr
				}
				// Printed once the open below shows that no server holds the
				// directory (LevelDB's verification does not take its lock).
				verified = fmt.Sprintf("%s: backend verification of %d file(s) passed\n", f.dir, nfiles)
			} else {
				// The server has the files open and changes them: libdb's
				// DB->verify must not run on them, nor may LevelDB's tables be
				// read behind its back.
				fmt.Fprintf(cio.stdout, "%s: backend verification skipped: the server has the files open (stop it and run check to verify them)\n", f.dir)
			}
			// 2. The engine invariants.
			db, _, done, err := f.openTool(ctx, cio, engine.Options{ReadOnly: !*repair, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
			if errors.Is(err, kv.ErrInUse) {
				return routeLive(ctx, cio, f.dir, c.name, args, err)
			}
			if err != nil {
				if kind, _ := backend.Detect(f.dir); kind == backend.BDB && !*repair {
					// A read-only open reads the files as they were left: after a
					// crash, committed data may still be only in the log.
					return fmt.Errorf("%w\n(a read-only check reads the files as they were left; after a crash, run `durusbdb recover --dir %s` or start the server once, so that recovery replays the log, then check again)", err, f.dir)
				}
				return err
			}
			defer done()
			fmt.Fprint(cio.stdout, verified)
			rep, err := db.Check(ctx, *repair)
			if err != nil {
				return err
			}
			fmt.Fprintf(cio.stdout, "%s: layout %s, backend %s, %d objects, %d references, max oid %d\n",
				f.dir, rep.Layout, db.Backend(), rep.Objects, rep.Refs, rep.MaxOID)
			for _, p := range rep.Problems {
				fmt.Fprintf(cio.stdout, "problem: %s\n", p)
			}
			if n := rep.ProblemCount - len(rep.Problems); n > 0 {
				fmt.Fprintf(cio.stdout, "... and %d more problems\n", n)
			}
			if *repair && !rep.OK() {
				fmt.Fprintf(cio.stdout, "repaired: %d fixes written; checking again\n", rep.Repaired)
				if rep, err = db.Check(ctx, false); err != nil {
					return err
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(cio.stdout, "remaining problem: %s\n", p)
				}
			}
			if !rep.OK() {
				return &exitError{exitProblems, fmt.Errorf("%d problems found in %s", rep.ProblemCount, f.dir)}
			}
			fmt.Fprintln(cio.stdout, "ok")
			return nil
		}
	}
	return c
}
