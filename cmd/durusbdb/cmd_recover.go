package main

import (
	"context"
	"fmt"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/leveldb"
	"github.com/durusbdb/durusbdb/recovery"
	"github.com/spf13/pflag"
)

// recoverCommand is `durusbdb recover`: run Berkeley DB normal or
// catastrophic recovery, or a LevelDB repair, with a report.
func recoverCommand() *command {
	c := &command{
		name:    "recover",
		summary: "recover a stopped database: Berkeley DB normal or catastrophic (--catastrophic) recovery, LevelDB repair",
		usage:   "durusbdb recover --dir DIR [--catastrophic] [--force] [--discard-damaged-log]",
		example: "cp /archive/log.* /var/lib/durusbdb/ && durusbdb recover --dir /var/lib/durusbdb --catastrophic",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		dir := fs.String("dir", "", "database directory (required); no server may be running on it")
		fatal := fs.Bool("catastrophic", false, "Berkeley DB: DB_RECOVER_FATAL, replaying every log file in the directory from the first (copy archived logs in first)")
		verbose := fs.BoolP("verbose", "v", false, "print libdb's recovery messages")
		force := fs.Bool("force", false, "LevelDB: repair even when every file verifies (by default a healthy database is left untouched)")
		discard := fs.Bool("discard-damaged-log", false, "Berkeley DB: when the last log file is damaged in its middle, end the log at the damaged record and discard the intact records after it (refused by default: restore a backup instead; the file is kept in DIR/lost/ first)")
		cacheSize := fs.String("cache-size", "64MiB", "cache size for recovery")
		logFormat := fs.String("log-format", "text", "log format: text or json")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			if *dir == "" {
				return &usageError{"--dir is required"}
			}
			ropts, err := recoveryOptions(*cacheSize, *logFormat, cio.stderr)
			if err != nil {
				return err
			}
			kind, _ := backend.Detect(*dir)
			switch {
			case kind == backend.LevelDB && *fatal:
				return &usageError{fmt.Sprintf("--catastrophic is Berkeley DB's catastrophic recovery; %s holds a LevelDB database, which `durusbdb recover --dir %s` repairs", *dir, *dir)}
			case kind == backend.LevelDB && *discard:
				return &usageError{fmt.Sprintf("--discard-damaged-log applies to a Berkeley DB log; %s holds a LevelDB database, whose repair drops damaged log records itself", *dir)}
			case kind == backend.BDB && *force:
				return &usageError{fmt.Sprintf("--force applies to a LevelDB repair; %s holds a Berkeley DB database, which recovery replays whatever its state (--catastrophic replays every log file)", *dir)}
			}
			if kind == backend.LevelDB && !*force {
				// A repair rewrites the tables and the MANIFEST: not for a
				// healthy database (LevelDB replays its own log at open),
				// but one that was interrupted must finish.
				if leveldb.RepairInterrupted(*dir) {
					fmt.Fprintf(cio.stdout, "%s: a repair was interrupted: finishing it\n", *dir)
				} else if _, err := recovery.VerifyBackend(*dir); err == nil {
					fmt.Fprintf(cio.stdout, "%s: LevelDB database verified (tables, logs, MANIFEST): nothing to repair, nothing changed (--force repairs anyway)\n", *dir)
					return nil
				}
			}
			if err := recovery.CheckSyncFinished(*dir); err != nil {
				return err
			}
			r, err := recovery.Recover(ctx, *dir, recovery.RecoverOptions{
				Options:           ropts,
				Catastrophic:      *fatal,
				DiscardDamagedLog: *discard,
			})
			err = replRecoverHint(*dir, err)
			if r != nil && (*verbose || err != nil) {
				for _, m := range r.Messages {
					fmt.Fprintf(cio.stdout, "  %s\n", m)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cio.stdout, r.Summary())
			if r.Backend == "bdb" {
				// A page checksum error sends operators here; recovery
				// replays the log and mends no page it does not replay.
				fmt.Fprintf(cio.stdout, "recovery replays the log; it does not mend a damaged database page: `durusbdb check --dir %s` verifies every page\n", *dir)
			}
			if r.Kind == recovery.KindRepair {
				for _, m := range r.Messages {
					fmt.Fprintln(cio.stdout, m)
				}
			}
			return nil
		}
	}
	return c
}
