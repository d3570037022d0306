package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/inspect"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

// inspectOpen opens the database of f read-only for the object tools.
// When a server holds the directory, the command (name, args) runs in that
// server through its control socket instead: routed is then true and err
// is the outcome.
func inspectOpen(ctx context.Context, cio cmdIO, f *dbFlags, name string, args []string) (db *engine.DB, done func(), routed bool, err error) {
	db, _, done, err = f.openTool(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
	if errors.Is(err, kv.ErrInUse) {
		return nil, nil, true, routeLive(ctx, cio, f.dir, name, args, err)
	}
	return db, done, false, err
}

// oidArg parses the one OID argument of refs and dump.
func oidArg(fs *pflag.FlagSet) (uint64, error) {
	if fs.NArg() != 1 {
		return 0, &usageError{"want exactly one OID argument"}
	}
	oid, err := strconv.ParseUint(fs.Arg(0), 0, 64)
	if err != nil {
		return 0, &usageError{fmt.Sprintf("OID %q: not a number", fs.Arg(0))}
	}
	return oid, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func oidList(l []uint64) string {
	if len(l) == 0 {
		return "(none)"
	}
	s := make([]string, len(l))
	for i, o := range l {
		s[i] = strconv.FormatUint(o, 10)
	}
	return strings.Join(s, " ")
}

// analyzeCommand is `durusbdb analyze`: objects and bytes per class and
// the largest records, like ZODB's analyze.py.
func analyzeCommand() *command {
	c := &command{
		name:    "analyze",
		summary: "objects and bytes per class, and the largest records (like ZODB's analyze.py)",
		usage:   "durusbdb analyze --dir DIR [--top N] [--json]",
		example: "durusbdb analyze --dir /var/lib/durusbdb --top 20",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		top := fs.Int("top", 10, "list this many of the largest records")
		asJSON := fs.Bool("json", false, "print JSON (keys: objects, bytes, classes, largest, unreadable)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			if *top < 0 {
				return &usageError{"--top must not be negative"}
			}
			db, done, routed, err := inspectOpen(ctx, cio, &f, c.name, args)
			if routed || err != nil {
				return err
			}
			defer done()
			a, err := inspect.Analyze(ctx, db, *top, nil)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cio.stdout, a)
			}
			tw := tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "objects\tbytes\t%%bytes\tavg\tlargest oid\t class\n")
			for _, cs := range a.Classes {
				pct := 0.0
				if a.Bytes > 0 {
					pct = 100 * float64(cs.Bytes) / float64(a.Bytes)
				}
				fmt.Fprintf(tw, "%d\t%d\t%.1f\t%d\t%d\t %s\n", cs.Objects, cs.Bytes, pct, cs.Bytes/max(cs.Objects, 1), cs.Largest, cs.Class)
			}
			fmt.Fprintf(tw, "%d\t%d\t100.0\t%d\t\t total\n", a.Objects, a.Bytes, a.Bytes/max(a.Objects, 1))
			tw.Flush()
			if len(a.Largest) > 0 {
				fmt.Fprintf(cio.stdout, "\nlargest records:\n")
				tw = tabwriter.NewWriter(cio.stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
				for _, o := range a.Largest {
					fmt.Fprintf(tw, "%d\t%d\t %s\n", o.OID, o.Size, o.Class)
				}
				tw.Flush()
			}
			if a.Unreadable > 0 {
				fmt.Fprintf(cio.stdout, "\n%d records could not be parsed (run durusbdb check)\n", a.Unreadable)
			}
			return nil
		}
	}
	return c
}

// refsCommand is `durusbdb refs`: what an oid refers to and what refers
// to it, like ZODB's fsrefs/fsoids.
func refsCommand() *command {
	c := &command{
		name:    "refs",
		summary: "what an object refers to and what refers to it (one scan of the database)",
		usage:   "durusbdb refs --dir DIR [--json] OID",
		example: "durusbdb refs --dir /var/lib/durusbdb 42",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		asJSON := fs.Bool("json", false, "print JSON (keys: oid, class, size, data_size, refs, exists, referred_by)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			oid, err := oidArg(fs)
			if err != nil {
				return err
			}
			db, done, routed, err := inspectOpen(ctx, cio, &f, c.name, args)
			if routed || err != nil {
				return err
			}
			defer done()
			r, err := inspect.Referrers(ctx, db, oid, nil)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cio.stdout, r)
			}
			if r.Exists {
				fmt.Fprintf(cio.stdout, "oid %d: %s, %d bytes\nrefers to: %s\n", oid, r.Class, r.Size, oidList(r.Refs))
			} else {
				fmt.Fprintf(cio.stdout, "oid %d: no record\n", oid)
			}
			fmt.Fprintf(cio.stdout, "referred to by: %s\n", oidList(r.ReferredBy))
			return nil
		}
	}
	return c
}

// dumpCommand is `durusbdb dump`: one record's class, size and
// references, or its raw bytes.
func dumpCommand() *command {
	c := &command{
		name:    "dump",
		summary: "one object's class, size and references (--raw: the record bytes)",
		usage:   "durusbdb dump --dir DIR [--raw | --json] OID",
		example: "durusbdb dump --dir /var/lib/durusbdb --raw 0 > root.record",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var f dbFlags
		f.register(fs)
		raw := fs.Bool("raw", false, "write the record's bytes (FORMAT.md record layout) to stdout")
		asJSON := fs.Bool("json", false, "print JSON (keys: oid, class, size, data_size, refs)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			oid, err := oidArg(fs)
			if err != nil {
				return err
			}
			if *raw && *asJSON {
				return &usageError{"--raw and --json exclude each other"}
			}
			db, done, routed, err := inspectOpen(ctx, cio, &f, c.name, args)
			if routed || err != nil {
				return err
			}
			defer done()
			rec, err := db.Load(oid)
			if errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("dump: oid %d has no record in %s", oid, f.dir)
			}
			if err != nil {
				return err
			}
			if *raw {
				_, err := cio.stdout.Write(rec)
				return err
			}
			o, err := inspect.Describe(oid, rec)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cio.stdout, o)
			}
			fmt.Fprintf(cio.stdout, "oid:        %d\nclass:      %s\nsize:       %d bytes (pickles %d)\nreferences: %s\n", o.OID, o.Class, o.Size, o.Data, oidList(o.Refs))
			return nil
		}
	}
	return c
}
