package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/recovery"
	"github.com/spf13/pflag"
)

// restoreCommand is `durusbdb restore`: verify a backup completely, write
// it into an empty directory, recover it and check it.
func restoreCommand() *command {
	c := &command{
		name:    "restore",
		summary: "restore a backup (directory or stream file) into an empty directory, verified before anything is written",
		usage:   "durusbdb restore [--no-check] [--until TIME] IN DIR",
		example: "durusbdb restore /backups/durus-2026-11-25.tar.sz /var/lib/durusbdb-restored && durusbdb serve --dir /var/lib/durusbdb-restored",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		noCheck := fs.Bool("no-check", false, "skip the full database check after the restore")
		cacheSize := fs.String("cache-size", "64MiB", "cache size for recovery and the check")
		logFormat := fs.String("log-format", "text", "log format: text or json")
		untilS := fs.String("until", "", "point-in-time restore (Berkeley DB): the database as it was at TIME, RFC 3339 (2026-11-25T14:00:00Z, 2026-11-25T15:00:00+01:00) or local time (2026-11-25 14:00:00); commits after it are rolled back")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			var until time.Time
			if *untilS != "" {
				t, err := parseUntil(*untilS)
				if err != nil {
					return &usageError{"--until: " + err.Error()}
				}
				until = t
			}
			if fs.NArg() != 2 {
				return &usageError{"want two arguments: IN (backup directory or stream file) and DIR (new or empty directory)"}
			}
			in, dir := fs.Arg(0), fs.Arg(1)
			ropts, err := recoveryOptions(*cacheSize, *logFormat, cio.stderr)
			if err != nil {
				return err
			}
			res, err := recovery.Restore(ctx, in, dir, recovery.RestoreOptions{
				Options: ropts,
				Until:   until,
			})
			if err != nil {
				return err
			}
			m := res.Manifest
			fmt.Fprintf(cio.stdout, "restored %s (%s backup of %s made %s) into %s: %d files, %d bytes\n",
				in, m.Backend, m.Source, m.Created.Format("2006-01-02 15:04:05Z07:00"), dir, len(m.Files), m.Size())
			if res.Increments > 0 {
				fmt.Fprintf(cio.stdout, "increments: %d applied, the last made %s\n", res.Increments, res.Through.Format("2006-01-02 15:04:05Z07:00"))
			}
			if !until.IsZero() {
				fmt.Fprintf(cio.stdout, "point in time: commits after %s rolled back\n", until.Format(time.RFC3339))
			}
			if res.Recovery != nil {
				fmt.Fprintf(cio.stdout, "recovery: %s\n", res.Recovery.Summary())
			}
			if *noCheck {
				return nil
			}
			// A writable open and clean close also clears the in_use mark the
			// source had while its server ran.
			db, err := engine.Open(ctx, dir, engine.Options{CacheSize: ropts.CacheSize, Logger: ropts.Logger,
				GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
			if err != nil {
				if ierr := checkInterrupted(ctx, dir, err); ierr != nil {
					return ierr
				}
				return fmt.Errorf("restored %s, but it does not open: %w", dir, err)
			}
			rep, err := db.Check(ctx, false)
			if cerr := db.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				if ierr := checkInterrupted(ctx, dir, err); ierr != nil {
					return ierr
				}
				return fmt.Errorf("restored %s, but checking it failed: %w", dir, err)
			}
			fmt.Fprintf(cio.stdout, "check: %d objects, %d references, max oid %d\n", rep.Objects, rep.Refs, rep.MaxOID)
			for _, p := range rep.Problems {
				fmt.Fprintf(cio.stdout, "problem: %s\n", p)
			}
			if !rep.OK() {
				return &exitError{exitProblems, fmt.Errorf("restored %s, but check found %d problems", dir, rep.ProblemCount)}
			}
			fmt.Fprintln(cio.stdout, "ok")
			return nil
		}
	}
	return c
}

// checkInterrupted is the error of a restore whose final open or check of
// dir failed with err because ctx was cancelled (SIGINT, SIGTERM): the
// restore itself is complete (its files are in place, recovered), only
// the check was cut short, so it says that and how to finish it; the
// exit stays non-zero, for the command was interrupted. It returns nil
// when err is not the cancellation.
func checkInterrupted(ctx context.Context, dir string, err error) error {
	if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		return nil
	}
	return fmt.Errorf("the restore into %s is complete, but its final check was interrupted (%w); check it with `durusbdb check --dir %s`", dir, err, dir)
}

// parseUntil parses the time of restore --until: RFC 3339 (with or
// without fractional seconds), or "2006-01-02 15:04:05" / "2006-01-02T15:04:05"
// in local time.
func parseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q (want RFC 3339, e.g. 2026-11-25T14:00:00Z, or local 2026-11-25 14:00:00)", s)
}
