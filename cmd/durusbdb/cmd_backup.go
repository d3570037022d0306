package main

import (
	"context"
	"fmt"

	"github.com/durusbdb/durusbdb/recovery"
)

// backupCommand is `durusbdb backup`: a hot backup of a database, to a
// directory or one stream file (FORMAT.md §8), while a server keeps
// serving it (Berkeley DB) or while it is stopped (LevelDB).
func backupCommand() *command {
	c := &command{
		name:    "backup",
		summary: "back up a database (hot, alongside a running server, for Berkeley DB) to a directory or a stream file",
		usage:   "durusbdb backup --dir DIR [--stream] OUT",
		example: "durusbdb backup --dir /var/lib/durusbdb --stream /backups/durus-$(date +%F).tar.sz",
	}
	c.run = func(ctx context.Context, cio cmdIO, args []string) error {
		// A LevelDB database held by a server is backed up by that server
		// (control socket; backup_live.go).
		if handled, err := backupLive(ctx, cio, c, args); handled {
			return err
		}
		fs := newFlagSet(c, cio)
		dir := fs.String("dir", "", "database directory (required); a server may be serving it (Berkeley DB)")
		streamOut := fs.Bool("stream", false, "write OUT as one file: tar (MANIFEST first) compressed with the snappy framing format; default: OUT is a new directory")
		cacheSize := fs.String("cache-size", "64MiB", "cache size if the backup has to open the environment itself (no server running)")
		logFormat := fs.String("log-format", "text", "log format: text or json")
		if err := parseFlags(c, cio, fs, args); err != nil {
			return err
		}
		if *dir == "" {
			return &usageError{"--dir is required"}
		}
		if fs.NArg() != 1 {
			return &usageError{"want exactly one argument: OUT, the backup directory or (with --stream) file to create"}
		}
		out := fs.Arg(0)
		cache, err := parseSize(*cacheSize)
		if err != nil {
			return &usageError{"--cache-size: " + err.Error()}
		}
		log, err := (&dbFlags{logFormat: *logFormat}).logger(cio.stderr)
		if err != nil {
			return err
		}
		res, err := recovery.Backup(ctx, *dir, out, recovery.BackupOptions{
			Options: recovery.Options{Logger: log, Progress: cio.stderr, CacheSize: cache},
			Stream:  *streamOut,
		})
		if err != nil {
			return err
		}
		m := res.Manifest
		fmt.Fprintf(cio.stdout, "backup of %s (%s, %s) written to %s: %d files, %d bytes of data, %d bytes written, in %v\n",
			*dir, m.Backend, m.Mode, res.Out, len(m.Files), m.Size(), res.Bytes, res.Duration.Round(1e6))
		return nil
	}
	return c
}
