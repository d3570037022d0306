package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/durusbdb/durusbdb/engine"
)

func statsCommand() *command {
	c := &command{
		name:    "stats",
		summary: "print the backend, objects, next oid, GC queue and collector totals of a stopped database (--json for machines)",
		usage:   "durusbdb stats --dir DIR [--json]",
		example: "durusbdb stats --dir /var/lib/durusbdb --json",
	}
	c.run = func(ctx context.Context, cio cmdIO, args []string) error {
		var f dbFlags
		fs := newFlagSet(c, cio)
		f.register(fs)
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parseFlags(c, cio, fs, args); err != nil {
			return err
		}
		if err := noArgs(fs); err != nil {
			return err
		}
		db, err := f.open(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
		if err != nil {
			return err
		}
		defer db.Close()
		st, err := db.Stats()
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(cio.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		fmt.Fprintf(cio.stdout, "directory:      %s\nbackend:        %s (%s)\nobjects:        %d\nnext oid:       %d\ngc queue:       %d\ngc freed:       %d in %d collections\nunclean close:  %v\n",
			f.dir, st.Backend, st.Access, st.Objects, st.NextOID, st.GCQueue, st.GCFreed, st.GCCollections, st.UncleanShutdown)
		return nil
	}
	return c
}
