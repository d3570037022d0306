package main

import (
	"context"
	"fmt"
	"github.com/spf13/pflag"

	"github.com/durusbdb/durusbdb/recovery"
)

// recoverCommand is `durusbdb recover`: run Berkeley DB normal or
// catastrophic recovery, or a LevelDB repair, with a report.
func recoverCommand() *command {
	c := &command{
		name:    "recover",
		summary: "recover a stopped database: Berkeley DB normal or catastrophic (--catastrophic) recovery, LevelDB repair",
		usage:   "durusbdb recover --dir DIR [--catastrophic]",
		example: "cp /archive/log.* /var/lib/durusbdb/ && durusbdb recover --dir /var/lib/durusbdb --catastrophic",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		dir := fs.String("dir", "", "database directory (required); no server may be running on it")
		fatal := fs.Bool("catastrophic", false, "Berkeley DB: DB_RECOVER_FATAL, replaying every log file in the directory from the first (copy archived logs in first)")
		verbose := fs.Bool("v", false, "print libdb's recovery messages")
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
			r, err := recovery.Recover(ctx, *dir, recovery.RecoverOptions{
				Options:      ropts,
				Catastrophic: *fatal,
			})
			if r != nil && (*verbose || err != nil) {
				for _, m := range r.Messages {
					fmt.Fprintf(cio.stdout, "  %s\n", m)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cio.stdout, r.Summary())
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
