package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/durusbdb/durusbdb/recovery"
	"github.com/spf13/pflag"
)

// backupCommand is `durusbdb backup`: a hot backup of a database, to a
// directory or one stream file (FORMAT.md §8), while a server keeps
// serving it (Berkeley DB) or while it is stopped (LevelDB).
func backupCommand() *command {
	c := &command{
		name:    "backup",
		summary: "back up a database (hot, alongside a running server, for Berkeley DB) to a directory or a stream file",
		usage:   "durusbdb backup --dir DIR [--stream] [--keep N] OUT | backup --dir DIR --incremental OUT | backup --verify OUT",
		example: "durusbdb backup --dir /var/lib/durusbdb --keep 7 /backups/durus/$(date +%FT%H%M) && durusbdb backup --dir /var/lib/durusbdb --incremental /backups/durus/2026-11-25T0000 && durusbdb backup --verify /backups/durus/2026-11-25T0000",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		dir := fs.String("dir", "", "database directory (required); a server may be serving it (Berkeley DB)")
		streamOut := fs.Bool("stream", false, "write OUT as one file: tar (MANIFEST first) compressed with the snappy framing format; default: OUT is a new directory")
		cacheSize := fs.String("cache-size", "64MiB", "cache size if the backup has to open the environment itself (no server running)")
		logFormat := fs.String("log-format", "text", "log format: text or json")
		incremental := fs.Bool("incremental", false, "add the Berkeley DB log files written since the last backup to the existing backup directory OUT (the server must keep its logs: serve --keep-logs)")
		verify := fs.Bool("verify", false, "check the backup OUT without restoring it: every checksum of its manifests, then a trial restore and check in a temporary directory (--dir not needed)")
		keep := fs.Int("keep", 0, "retention: after a full backup, verify it (as --verify does) and keep the newest N complete backups of the same database among the entries of OUT's parent directory, removing older ones; a backup that does not verify removes nothing and exits 3 (0: remove nothing)")
		tmpDir := fs.String("tmp-dir", "", "with --verify: where the trial restore goes (default: the directory holding OUT)")
		// --stage is how a client routing a backup to a LevelDB database's
		// server names its staging directory (backup_live.go); not for people.
		stage := fs.String("stage", "", "set by a backup routed to the server of a LevelDB database")
		_ = fs.MarkHidden("stage")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			// A LevelDB database held by a server is backed up by that server
			// (control socket; backup_live.go).
			if handled, err := backupLive(ctx, cio, c, args); handled {
				return err
			}
			if *stage != "" {
				return &usageError{"--stage is set only by a backup that a LevelDB database's server carries out"}
			}
			src := cio.src
			// A flag that does not apply to the mode asked for is an error on
			// the command line, and ignored when it comes from DURUSBDB_* or a
			// config file (DURUSBDB_DIR set for every command must not break
			// backup --verify).
			given := func(name string) bool { return src[name].kind == srcFlag }
			if *verify || *incremental {
				if !given("keep") {
					*keep = 0
				}
				if !given("stream") {
					*streamOut = false
				}
			}
			if *verify && !given("dir") {
				*dir = ""
			}
			if !*verify && !given("tmp-dir") {
				*tmpDir = ""
			}
			if *dir == "" && !*verify {
				return &usageError{"--dir is required"}
			}
			if fs.NArg() != 1 {
				return &usageError{"want exactly one argument: OUT, the backup directory or (with --stream) file to create, or to add to (--incremental) or check (--verify)"}
			}
			out := fs.Arg(0)
			switch {
			case *keep < 0:
				return &usageError{"--keep must be 0 (no retention) or more"}
			case *incremental && *verify:
				return &usageError{"--incremental and --verify exclude each other"}
			case *incremental && *streamOut:
				return &usageError{"--incremental adds to a backup directory; it does not take --stream"}
			case *keep > 0 && (*incremental || *verify):
				return &usageError{"--keep applies to full backups only (not with --incremental or --verify)"}
			case *tmpDir != "" && !*verify:
				return &usageError{"--tmp-dir applies to --verify only"}
			case *verify && (*dir != "" || *streamOut):
				return &usageError{"--verify takes only the backup OUT (no --dir, no --stream)"}
			}
			return runBackup(ctx, cio, backupJob{dir: *dir, out: out, stream: *streamOut, incremental: *incremental,
				verify: *verify, keep: *keep, tmpDir: *tmpDir, cacheSize: *cacheSize, logFormat: *logFormat})
		}
	}
	return c
}

// backupJob is one backup, its flags checked.
type backupJob struct {
	dir, out, tmpDir, cacheSize, logFormat string
	stream, incremental, verify            bool
	keep                                   int
}

// runBackup runs a full, incremental or verify backup and prints its
// summary.
func runBackup(ctx context.Context, cio cmdIO, j backupJob) error {
	ropts, err := recoveryOptions(j.cacheSize, j.logFormat, cio.stderr)
	if err != nil {
		return err
	}
	switch {
	case j.verify:
		res, err := recovery.VerifyBackup(ctx, j.out, recovery.VerifyOptions{Options: ropts, TempDir: j.tmpDir})
		if errors.Is(err, recovery.ErrBadBackup) {
			return &exitError{exitProblems, err}
		}
		if err != nil {
			return err
		}
		m := res.Manifest
		fmt.Fprintf(cio.stdout, "backup %s verified (%s backup of %s made %s, %d increments): %d files, %d bytes; trial restore: %d objects, %d references, check ok, in %v\n",
			j.out, m.Backend, m.Source, m.Created.Format("2006-01-02 15:04:05Z07:00"), res.Increments, len(m.Files), m.Size(),
			res.Check.Objects, res.Check.Refs, res.Duration.Round(1e6))
		return nil
	case j.incremental:
		res, err := recovery.BackupIncremental(ctx, j.dir, j.out, recovery.BackupOptions{Options: ropts})
		if err != nil {
			return err
		}
		m := res.Manifest
		first, last := m.LogRange()
		fmt.Fprintf(cio.stdout, "increment %d of %s (%s) added to %s: log files %s to %s, %d bytes, in %v\n",
			m.Increment, j.dir, m.Mode, j.out, first, last, res.Bytes, res.Duration.Round(1e6))
		return nil
	}
	res, err := recovery.Backup(ctx, j.dir, j.out, recovery.BackupOptions{
		Options: ropts,
		Stream:  j.stream,
		Keep:    j.keep,
	})
	if res != nil {
		m := res.Manifest
		fmt.Fprintf(cio.stdout, "backup of %s (%s, %s) written to %s: %d files, %d bytes of data, %d bytes written, in %v\n",
			j.dir, m.Backend, m.Mode, res.Out, len(m.Files), m.Size(), res.Bytes, res.Duration.Round(1e6))
		for _, r := range res.Removed {
			fmt.Fprintf(cio.stdout, "retention (--keep %d): removed %s\n", j.keep, r)
		}
	}
	if errors.Is(err, recovery.ErrBadBackup) {
		return &exitError{exitProblems, err}
	}
	return err
}
