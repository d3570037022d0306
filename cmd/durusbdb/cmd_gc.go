package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

func gcCommand() *command {
	c := &command{
		name:    "gc",
		summary: "run the reference-count collector, or a full collection (--full), now",
		usage:   "durusbdb gc --dir DIR [--full] [--rate N]",
		example: "durusbdb gc --dir /var/lib/durusbdb --full",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		full := fs.Bool("full", false, "full collection: mark from the root and sweep (reclaims cycles)")
		rate := fs.Int("rate", 0, "reference-count collector: objects per second (0 = as fast as possible)")
		grace := fs.Duration("grace", 0, "only collect candidates older than this (default: none offline; the server's --gc-grace when a server runs the command)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			graceSet := false
			fs.Visit(func(fl *pflag.Flag) { graceSet = graceSet || fl.Name == "grace" })
			g := *grace
			if g == 0 {
				g = -1 // engine: negative means no grace period
			}
			db, lv, done, err := f.openTool(ctx, cio, engine.Options{GC: engine.GCPolicy{Mode: engine.GCManual, Rate: *rate}, GCGrace: g})
			if errors.Is(err, kv.ErrInUse) {
				return routeLive(ctx, cio, f.dir, c.name, args, err)
			}
			if err != nil {
				return err
			}
			defer done()
			if err := liveReplica(lv, db, f.dir, "the collector deletes, and only the master writes (replication brings its deletions here)"); err != nil {
				return err
			}
			collect := db.CollectGarbage // the server's grace period when live
			if lv != nil && graceSet {
				collect = func(ctx context.Context, max int) (int, error) { return db.CollectGarbageGrace(ctx, max, *grace) }
			}
			if *full {
				st, err := db.FullCollect(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(cio.stdout, "full collection: %d reachable, %d removed, %d dangling references, %d counters fixed, %s\n",
					st.Marked, st.Removed, st.Dangling, st.Fixed, st.Duration)
				return nil
			}
			total := 0
			for {
				n, err := collect(ctx, 10000)
				if err != nil {
					return err
				}
				total += n
				if n == 0 {
					break
				}
			}
			fmt.Fprintf(cio.stdout, "reference-count collector: %d objects removed\n", total)
			return nil
		}
	}
	return c
}
