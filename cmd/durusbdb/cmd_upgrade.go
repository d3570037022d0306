package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/durusbdb/durusbdb/recovery"
	"github.com/spf13/pflag"
)

// upgradeCommand is `durusbdb upgrade`: libdb's upgrade procedure for a
// directory written by an older Berkeley DB release (FORMAT.md §7).
func upgradeCommand() *command {
	c := &command{
		name:    "upgrade",
		summary: "upgrade a stopped Berkeley DB directory written by an older release (4.x) to 5.3, after a backup copy",
		usage:   "durusbdb upgrade --dir DIR [--backup-dir PATH]",
		example: "durusbdb upgrade --dir /var/lib/durusbdb --backup-dir /var/lib/durusbdb.before-upgrade",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		dir := fs.String("dir", "", "database directory (required); no process may have it open")
		backupDir := fs.String("backup-dir", "", "where to copy the directory first (new or empty); default DIR.pre-upgrade-TIMESTAMP")
		logFormat := fs.String("log-format", "text", "log format: text or json")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			if *dir == "" {
				return &usageError{"--dir is required"}
			}
			log, err := (&dbFlags{logFormat: *logFormat}).logger(cio.stderr)
			if err != nil {
				return err
			}
			rep, err := recovery.Upgrade(ctx, *dir, recovery.UpgradeOptions{
				Options:   recovery.Options{Logger: log, Progress: cio.stderr},
				BackupDir: *backupDir,
			})
			if err != nil {
				return err
			}
			if rep.BackupDir != "" {
				fmt.Fprintf(cio.stdout, "backup copy of %s: %s\n", *dir, rep.BackupDir)
			}
			for _, f := range rep.Before {
				fmt.Fprintf(cio.stdout, "  %-16s %-5s version %d%s\n", f.Name, f.Kind, f.Version, map[bool]string{true: " (current)", false: " (old)"}[f.Current])
			}
			if rep.NoOp {
				fmt.Fprintf(cio.stdout, "%s is already in Berkeley DB 5.3 format: nothing upgraded, nothing copied\n", *dir)
				return nil
			}
			fmt.Fprintf(cio.stdout, "upgraded: %s\n", strings.Join(rep.Upgraded, ", "))
			if len(rep.LogsRemoved) > 0 {
				fmt.Fprintf(cio.stdout, "old log files removed: %s; LSNs reset in %s\n", strings.Join(rep.LogsRemoved, ", "), strings.Join(rep.LSNReset, ", "))
			}
			fmt.Fprintf(cio.stdout, "%s upgraded in %v\n", *dir, rep.Duration.Round(1e6))
			return nil
		}
	}
	return c
}
