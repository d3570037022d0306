package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/progress"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/recovery"
	"github.com/spf13/pflag"
)

// checkCommand is `durusbdb check`: the backend's own verification, then
// the engine's invariants (engine.DB.Check).
func checkCommand() *command {
	c := &command{
		name:    "check",
		summary: "verify a database: backend files, references, refcounts, size counter, GC queue",
		usage:   "durusbdb check --dir DIR [--repair] [--json] [--progress]",
		example: "durusbdb check --dir /var/lib/durusbdb && echo clean",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		var k checkRun
		k.db.register(fs)
		fs.BoolVar(&k.repair, "repair", false, "fix counters and queues (never deletes a reachable object)")
		fs.BoolVar(&k.json, "json", false, "print the report as JSON (keys: dir, layout, backend, objects, refs, max_oid, backend_files_verified, problems, problem_count, repaired, ok)")
		fs.BoolVar(&k.progress, "progress", false, "show progress on stderr even when it is not a terminal (default: only on a terminal)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			if k.db.dir == "" {
				return &usageError{"--dir is required"}
			}
			k.args = args
			return k.run(ctx, cio)
		}
	}
	return c
}

// checkRun is one `durusbdb check`.
type checkRun struct {
	db                     dbFlags
	repair, json, progress bool
	args                   []string // the command line, for routeLive
}

// checkJSON is the report of check --json.
type checkJSON struct {
	Dir                  string `json:"dir"`
	Layout               string `json:"layout"`
	Backend              string `json:"backend"`
	Objects              uint64 `json:"objects"`
	Refs                 uint64 `json:"refs"`
	MaxOID               uint64 `json:"max_oid"`
	BackendFilesVerified int    `json:"backend_files_verified"` // -1: skipped (a server has the files open)
	// PageChecksumsOff: Berkeley DB files created without page checksums
	// (not a problem: a note; `durusbdb copy` makes files that have them).
	PageChecksumsOff []string `json:"page_checksums_off,omitempty"`
	// FullUnfinished: the start of a full collection's sweep that did
	// not finish (meta full), or empty. A note: its problems, if any,
	// are the counts it left, which a full collection mends.
	FullUnfinished string   `json:"full_unfinished,omitempty"`
	Problems       []string `json:"problems"`
	ProblemCount   int      `json:"problem_count"`
	Repaired       int      `json:"repaired"`
	OK             bool     `json:"ok"`

	found []string // with --repair: the problems found before repairing
}

func (k *checkRun) run(ctx context.Context, cio cmdIO) error {
	// 1. The backend's own verification (db_verify's DB->verify for
	// Berkeley DB; table, log and MANIFEST checksums for LevelDB).
	nfiles, err := k.verifyBackend(ctx, cio)
	if err != nil || nfiles == errRouted {
		return err
	}
	// 2. The engine invariants.
	db, lv, done, err := k.db.openTool(ctx, cio, engine.Options{ReadOnly: !k.repair, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
	if errors.Is(err, kv.ErrInUse) {
		return routeLive(ctx, cio, k.db.dir, "check", k.args, err)
	}
	if err == nil {
		// A replica's environment has no snapshots (environment-wide
		// MVCC panics replicas): a scan while replication applies
		// commits meets half of them and reported them as problems.
		if err := liveReplica(lv, db, k.db.dir, "check reads no consistent snapshot there while replication applies commits (what it found could be commits in flight)"); err != nil {
			return err
		}
	}
	if err != nil {
		if kind, _ := backend.Detect(k.db.dir); kind == backend.BDB && !k.repair {
			// A read-only open reads the files as they were left: after a
			// crash, committed data may still be only in the log.
			return fmt.Errorf("%w\n(a read-only check reads the files as they were left; after a crash, run `durusbdb recover --dir %s` or start the server once, so that recovery replays the log, then check again)", err, k.db.dir)
		}
		return err
	}
	defer done()
	out, err := k.checkEngine(ctx, cio, db, nfiles)
	if err != nil {
		return err
	}
	if k.json {
		if err := writeJSON(cio.stdout, out); err != nil {
			return err
		}
	} else {
		k.writeText(cio.stdout, out)
	}
	if !out.OK {
		return &exitError{exitProblems, fmt.Errorf("%d problems found in %s", out.ProblemCount, k.db.dir)}
	}
	return nil
}

// checkEngine runs the engine check (with --repair, the repair and a
// second check), each with its progress on stderr, and returns the report.
func (k *checkRun) checkEngine(ctx context.Context, cio cmdIO, db *engine.DB, nfiles int) (checkJSON, error) {
	rep, err := k.checkOnce(ctx, cio, db, k.repair, "check "+k.db.dir)
	if err != nil {
		return checkJSON{}, err
	}
	out := checkJSON{Dir: k.db.dir, Layout: rep.Layout, Backend: db.Backend(), Objects: rep.Objects, Refs: rep.Refs,
		MaxOID: rep.MaxOID, BackendFilesVerified: nfiles, ProblemCount: rep.ProblemCount, Problems: problemStrings(rep)}
	off, err := recovery.PageChecksumsOff(k.db.dir)
	if err != nil {
		return checkJSON{}, err
	}
	out.PageChecksumsOff = off
	out.FullUnfinished = rep.FullUnfinished
	if k.repair && !rep.OK() {
		out.Repaired, out.found = rep.Repaired, out.Problems
		if rep, err = k.checkOnce(ctx, cio, db, false, "check "+k.db.dir+" (after the repair)"); err != nil {
			return checkJSON{}, err
		}
		out.ProblemCount, out.Problems = rep.ProblemCount, problemStrings(rep)
	}
	out.OK = rep.OK()
	return out, nil
}

// checkOnce runs one engine check with its progress bar: records read of
// the object count; the final line says 100% once every record was read.
func (k *checkRun) checkOnce(ctx context.Context, cio cmdIO, db *engine.DB, repair bool, what string) (*engine.CheckReport, error) {
	bar := k.newBar(cio, what)
	rep, err := db.CheckWith(ctx, engine.CheckOptions{Repair: repair, Progress: bar.update})
	bar.finish(err == nil)
	return rep, err
}

// problemStrings formats the problems of rep ([] if none, for --json).
func problemStrings(rep *engine.CheckReport) []string {
	ps := []string{}
	for _, p := range rep.Problems {
		ps = append(ps, p.String())
	}
	return ps
}

// checkBar is check's progress on stderr: records read of the object
// count (meta size, O(1)). The Reporter is made at the first count,
// which brings the total. A nil w shows nothing.
type checkBar struct {
	w            io.Writer
	log          *slog.Logger
	what         string
	r            *progress.Reporter
	total, shown int64
}

// update is engine.CheckOptions.Progress. A count above the object count
// (the counter is wrong, and check says so) shows as the total.
func (b *checkBar) update(done, total int64) {
	if b.w == nil {
		return
	}
	if b.r == nil {
		b.r, b.total = progress.New(b.w, b.log, b.what, "records", total), total
	}
	if done = min(done, b.total); done > b.shown {
		b.r.Add(done-b.shown, 0)
		b.shown = done
	}
}

// finish draws the final line: at 100% if the check read every record
// (complete), else where it stopped.
func (b *checkBar) finish(complete bool) {
	if b.r == nil {
		return
	}
	if complete && b.total > b.shown {
		b.r.Add(b.total-b.shown, 0) // the counter was above the records found
	}
	b.r.Done()
	b.r = nil
}

// newBar returns the progress of one check on stderr: a bar on a
// terminal, log lines with --progress otherwise, else nothing.
func (k *checkRun) newBar(cio cmdIO, what string) *checkBar {
	log, err := k.db.logger(cio.stderr)
	if err != nil || !k.progress && !progress.IsTerminal(cio.stderr) {
		return &checkBar{}
	}
	return &checkBar{w: cio.stderr, log: log, what: what}
}

// errRouted is verifyBackend's file count when the check ran in the
// server that holds the directory.
const errRouted = -2

// verifyBackend runs the backend's verification and returns the number of
// files verified (-1: skipped, the server has them open; errRouted: the
// whole check ran in the server).
func (k *checkRun) verifyBackend(ctx context.Context, cio cmdIO) (int, error) {
	dir := k.db.dir
	if liveFrom(ctx) != nil {
		// The server has the files open and changes them: libdb's
		// DB->verify must not run on them, nor may LevelDB's tables be
		// read behind its back.
		return -1, nil
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("is not a directory")
		}
		return 0, fmt.Errorf("database directory %s: %w", dir, err)
	}
	nfiles, verr := recovery.VerifyBackend(dir)
	if errors.Is(verr, kv.ErrInUse) {
		return errRouted, routeLive(ctx, cio, dir, "check", k.args, verr)
	}
	if verr == nil {
		return nfiles, nil
	}
	if kind, _ := backend.Detect(dir); kind == backend.LevelDB {
		// LevelDB's verification does not take the lock: a server
		// compacting meanwhile can fail it. Then the server checks.
		_, _, done, err := k.db.openTool(ctx, cio, engine.Options{ReadOnly: true, GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
		if errors.Is(err, kv.ErrInUse) {
			return errRouted, routeLive(ctx, cio, dir, "check", k.args, err)
		} else if err == nil {
			done()
		}
	}
	if errors.Is(verr, kv.ErrCorrupt) {
		if k.json {
			writeJSON(cio.stdout, checkJSON{Dir: dir, Problems: []string{"backend verification: " + verr.Error()}, ProblemCount: 1})
		} else {
			fmt.Fprintf(cio.stdout, "problem: backend verification: %v\n", verr)
		}
		return 0, &exitError{exitProblems, fmt.Errorf("backend verification of %s failed", dir)}
	}
	return 0, verr
}

// writeText prints the report for people.
func (k *checkRun) writeText(w io.Writer, r checkJSON) {
	if r.BackendFilesVerified >= 0 {
		fmt.Fprintf(w, "%s: backend verification of %d file(s) passed\n", r.Dir, r.BackendFilesVerified)
	} else {
		fmt.Fprintf(w, "%s: backend verification skipped: the server has the files open (stop it and run check to verify them)\n", r.Dir)
	}
	fmt.Fprintf(w, "%s: layout %s, backend %s, %d objects, %d references, max oid %d\n",
		r.Dir, r.Layout, r.Backend, r.Objects, r.Refs, r.MaxOID)
	if len(r.PageChecksumsOff) > 0 {
		fmt.Fprintf(w, "%s: note: %s have no page checksums (made by an earlier release or the Python original): a page damaged on disk would be read as data; `durusbdb copy %s NEWDIR` (server stopped) writes a copy whose files have them\n",
			r.Dir, strings.Join(r.PageChecksumsOff, ", "), r.Dir)
	}
	if r.FullUnfinished != "" {
		fmt.Fprintf(w, "%s: note: a full collection whose sweep began %s did not finish: the reference counts of unreachable objects it left may be above their in-degree (refcount problems below), and unreachable objects it has not removed yet may refer to ones it removed (dangling problems below, whose referrers are garbage); `durusbdb gc --dir %s --full` finishes it (a server started on the directory starts it itself)\n",
			r.Dir, r.FullUnfinished, r.Dir)
	}
	prefix := "problem"
	if r.found != nil {
		for _, p := range r.found {
			fmt.Fprintf(w, "problem: %s\n", p)
		}
		fmt.Fprintf(w, "repaired: %d fixes written; checked again\n", r.Repaired)
		prefix = "remaining problem"
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "%s: %s\n", prefix, p)
	}
	if n := r.ProblemCount - len(r.Problems); n > 0 {
		fmt.Fprintf(w, "... and %d more problems\n", n)
	}
	if r.OK {
		fmt.Fprintln(w, "ok")
	}
}
