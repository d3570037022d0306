package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/recovery"
)

// backupLive routes `durusbdb backup` of a LevelDB database that a server
// holds to that server (LevelDB allows one process per database), and
// runs such a request in the server. It reports whether it handled the
// command; if not, backup goes on as usual. Berkeley DB backups are never
// routed: a Berkeley DB hot backup joins the server's environment from
// the backup process (recovery.Backup), which needs no server help.
func backupLive(ctx context.Context, cio cmdIO, c *command, args []string) (bool, error) {
	if lv := liveFrom(ctx); lv != nil {
		return true, serverBackup(ctx, cio, c, lv, args)
	}
	dir := argDir(args, cio.environ)
	if dir == "" || argSet(args, "verify") {
		return false, nil // --verify reads a backup, not the database
	}
	if kind, err := backend.Detect(dir); err != nil || kind != backend.LevelDB {
		return false, nil
	}
	// This process, not the server, writes OUT (a relative OUT is this
	// process's): the staging directories killed backups left for it are
	// removed here, by the code a backup run here uses
	// (recovery.RemoveStaleStaging), before asking the server. Whether a
	// server answers or not, they are stale all the same.
	//
	// A directory OUT is written the way a backup run here writes it: the
	// files go into a staging directory made here beside (or inside) OUT
	// (--stage tells the server), moved into place once the server says
	// the backup is complete, so a backup killed meanwhile leaves nothing
	// at OUT. A stream OUT is one file, written to a temporary name and
	// renamed by the control client.
	var stage *recovery.BackupStage
	var log *slog.Logger
	a, perr := parseLiveBackup(c, cio, args)
	if perr == nil {
		var err error
		if log, err = (&dbFlags{logFormat: a.logFormat}).logger(cio.stderr); err != nil {
			return true, err
		}
		recovery.RemoveStaleStaging(a.out, log)
		if !a.stream && a.stage == "" {
			if stage, err = recovery.StageBackupDir(a.out, log); err != nil {
				return true, fmt.Errorf("backup %s: %w", dir, err)
			}
			defer stage.Release()
			args = append(slices.Clone(args), "--stage="+stage.Dir())
		}
	}
	ex, err := control.Run(ctx, dir, control.Request{Command: c.name, Args: args, Env: durusEnv(cio.environ)}, cio.stdout, cio.stderr)
	if errors.Is(err, control.ErrNoServer) {
		return false, nil // no server: the backup takes the directory itself
	}
	var fe *control.FileError
	if errors.As(err, &fe) {
		// The server made the backup; this process could not write it.
		return true, fmt.Errorf("backup %s to %s (made by the server that holds it): %w", dir, a.out, err)
	}
	if err != nil {
		return true, fmt.Errorf("backup %s: a server seems to hold it, and running the backup through its control socket failed: %w", dir, err)
	}
	if err := exitToError(ex); err != nil {
		return true, err
	}
	if stage != nil {
		if err := stage.Publish(); err != nil {
			return true, err
		}
	}
	if perr != nil || a.keep <= 0 {
		return true, nil
	}
	return true, retainLive(cio, a, log)
}

// retainLive applies --keep, here where OUT was written, after a backup
// that the server of a LevelDB database carried out (recovery.Retain).
func retainLive(cio cmdIO, a liveBackupArgs, log *slog.Logger) error {
	abs, err := filepath.Abs(a.out)
	if err != nil {
		return err
	}
	removed, err := recovery.Retain(filepath.Dir(abs), abs, a.keep, log)
	for _, r := range removed {
		fmt.Fprintf(cio.stdout, "retention (--keep %d): removed %s\n", a.keep, r)
	}
	if err != nil {
		return fmt.Errorf("backup written to %s, but retention failed: %w", a.out, err)
	}
	return nil
}

// argSet reports whether the boolean flag name is set in args (--name,
// --name=true, one or two dashes).
func argSet(args []string, name string) bool {
	for _, a := range args {
		n, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name && (!hasVal || val == "true" || val == "1") {
			return true
		}
	}
	return false
}

// argDir finds --dir in args (--dir D, --dir=D, one or two dashes), else
// DURUSBDB_DIR.
func argDir(args, environ []string) string {
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "dir" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "DURUSBDB_DIR="); ok {
			return v
		}
	}
	return ""
}

// serverBackup is a backup run by the server of a LevelDB database: a
// consistent copy of the open database (one read transaction, a LevelDB
// snapshot) into a staging directory, backed up there as an offline
// backup would be, then streamed to the client, which writes OUT.
func serverBackup(ctx context.Context, cio cmdIO, c *command, lv *liveServer, args []string) error {
	a, err := parseLiveBackup(c, cio, args)
	if err != nil {
		return err
	}
	dir, out := a.dir, a.out
	db := lv.db
	if db.Backend() != backend.LevelDB {
		return fmt.Errorf("backup %s: a Berkeley DB backup joins the server's environment itself; run it without the control socket", dir)
	}
	log, err := (&dbFlags{logFormat: a.logFormat}).logger(cio.stderr)
	if err != nil {
		return err
	}
	tmp, err := control.TempDir(db.Dir())
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, "db")
	if err := os.Mkdir(snap, 0o700); err != nil {
		return fmt.Errorf("backup %s: snapshot: %w", dir, err)
	}
	dst, _, err := backend.Open(kv.Options{Dir: snap, Create: true, Buckets: engine.Buckets(false, 0), Logger: log}, backend.LevelDB)
	if err != nil {
		return fmt.Errorf("backup %s: snapshot: %w", dir, err)
	}
	err = snapshotStore(ctx, db.Store(), dst)
	if err == nil {
		err = dst.Flush()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup %s: snapshot: %w", dir, err)
	}
	staged := filepath.Join(tmp, "out")
	res, err := recovery.Backup(ctx, snap, staged, recovery.BackupOptions{
		Options: recovery.Options{Logger: log, Progress: cio.stderr},
		Stream:  a.stream,
		Source:  db.Dir(), // the manifest names the database, not the snapshot (retention compares it)
	})
	if err != nil {
		return err
	}
	if a.stream {
		if err := lv.resp.SendFile(ctx, staged, control.FileHeader{Path: out, Mode: 0o640}); err != nil {
			return err
		}
	} else {
		// Into the client's staging directory for OUT (--stage), which the
		// client moves into place when this returns without error.
		target := out
		if a.stage != "" {
			target = a.stage
		}
		ents, err := os.ReadDir(staged)
		if err != nil {
			return fmt.Errorf("backup %s: %w", dir, err)
		}
		for _, e := range ents {
			if err := lv.resp.SendFile(ctx, filepath.Join(staged, e.Name()), control.FileHeader{Path: filepath.Join(target, e.Name()), Mode: 0o644}); err != nil {
				return err
			}
		}
	}
	m := res.Manifest
	fmt.Fprintf(cio.stdout, "backup of %s (%s, %s) written to %s: %d files, %d bytes of data, %d bytes written, in %v\n",
		dir, m.Backend, "snapshot by the server", out, len(m.Files), m.Size(), res.Bytes, res.Duration.Round(1e6))
	return nil
}

// liveBackupArgs are the flags and the argument of a backup run by the
// server of a LevelDB database.
type liveBackupArgs struct {
	dir, out, logFormat string
	stage               string // the client's staging directory for a directory OUT
	stream              bool
	keep                int // retention, applied by the client
}

// parseLiveBackup parses the arguments of a backup run by the server of a
// LevelDB database (--dir, --stream, OUT; --cache-size is ignored), as
// the server does and as the client does to find OUT.
func parseLiveBackup(c *command, cio cmdIO, args []string) (liveBackupArgs, error) {
	var a liveBackupArgs
	fs := newFlagSet(c.name)
	fs.StringVar(&a.dir, "dir", "", "database directory (required)")
	fs.BoolVar(&a.stream, "stream", false, "write OUT as one file")
	fs.String("cache-size", "64MiB", "ignored: the server's database is used")
	fs.StringVar(&a.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&a.stage, "stage", "", "set by the client: the staging directory the files of a directory OUT go to")
	fs.IntVar(&a.keep, "keep", 0, "retention, applied by the client once OUT is written")
	if err := parseFlags(fs, cio.environ, args); err != nil {
		return a, &usageError{fmt.Sprintf("%v (a backup run by the server of a LevelDB database takes --dir, --stream, --keep and OUT only)", err)}
	}
	if fs.NArg() != 1 {
		return a, &usageError{"want exactly one argument: OUT, the backup directory or (with --stream) file to create"}
	}
	a.out = fs.Arg(0)
	return a, nil
}

// snapshotStore copies every bucket of src to dst in one read transaction
// of src (for LevelDB a snapshot: consistent across buckets), skipping the
// meta keys that belong to the directory (in_use, backend).
func snapshotStore(ctx context.Context, src, dst kv.Store) error {
	return kv.View(ctx, src, func(rt kv.Txn) error {
		for _, b := range engine.Buckets(false, 0) {
			if _, err := copyBucket(ctx, rt, b.Name, dst, nil); err != nil {
				return fmt.Errorf("bucket %s: %w", b.Name, err)
			}
		}
		return nil
	})
}
