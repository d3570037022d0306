package recovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/engine"
)

// VerifyOptions configure VerifyBackup.
type VerifyOptions struct {
	Options
	// TempDir is where the trial restore is made (in a new directory,
	// removed afterwards); "" means the directory holding the backup,
	// which needs free space for one more copy of the database.
	TempDir string
}

// VerifyResult describes a backup that verified.
type VerifyResult struct {
	// Manifest describes what a restore writes (the newest version of
	// every file of the chain).
	Manifest   *Manifest
	Increments int
	Recovery   *Report
	Check      *engine.CheckReport
	Duration   time.Duration
}

// VerifyBackup checks the backup in (a directory, with its increments,
// or a stream file) without restoring it anywhere it stays: every
// checksum of every manifest of the chain and the links between them,
// then a trial restore into a temporary directory (catastrophic recovery
// for Berkeley DB) and engine.Check on the result. A file that fails its
// checksum is named in the error, which wraps ErrBadBackup, as does a
// check that finds problems.
func VerifyBackup(ctx context.Context, in string, opts VerifyOptions) (*VerifyResult, error) {
	start := time.Now()
	log := opts.logger()
	if _, err := os.Stat(in); err != nil {
		return nil, fmt.Errorf("recovery: verify %s: %w", in, err)
	}
	parent := opts.TempDir
	if parent == "" {
		abs, err := filepath.Abs(in)
		if err != nil {
			return nil, fmt.Errorf("recovery: verify %s: %w", in, err)
		}
		parent = filepath.Dir(abs)
	}
	st, err := newStaging(parent, log)
	if err != nil {
		return nil, fmt.Errorf("recovery: verify %s: trial restore: %w", in, err)
	}
	defer st.release()
	target := filepath.Join(st.dir, "db")
	rr, err := Restore(ctx, in, target, RestoreOptions{Options: opts.Options})
	if err != nil {
		return nil, fmt.Errorf("recovery: verify %s: %w", in, err)
	}
	res := &VerifyResult{Manifest: rr.Manifest, Increments: rr.Increments, Recovery: rr.Recovery}
	// An interrupt (ctx) while the trial restore opens or is checked says
	// nothing about the backup: it is reported as the interrupt, never as
	// ErrBadBackup.
	interrupted := func(what string) error {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("recovery: verify %s: interrupted while %s (the backup's checksums verified; run the verify again for the trial restore): %w", in, what, cerr)
		}
		return nil
	}
	db, err := engine.Open(ctx, target, engine.Options{CacheSize: opts.CacheSize, Logger: log,
		GC: engine.GCPolicy{Mode: engine.GCManual}, Checkpoint: engine.CheckpointPolicy{Manual: true}})
	if err != nil {
		if ierr := interrupted("opening the trial restore"); ierr != nil {
			return nil, ierr
		}
		return nil, fmt.Errorf("recovery: verify %s: the trial restore does not open: %v: %w", in, err, ErrBadBackup)
	}
	rep, err := db.Check(ctx, false)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		if ierr := interrupted("checking the trial restore"); ierr != nil {
			return nil, ierr
		}
		return nil, fmt.Errorf("recovery: verify %s: checking the trial restore: %v: %w", in, err, ErrBadBackup)
	}
	res.Check = rep
	if !rep.OK() {
		var ps []string
		for _, p := range rep.Problems {
			ps = append(ps, fmt.Sprint(p))
		}
		return res, fmt.Errorf("recovery: verify %s: the trial restore has %d problems (%s): %w", in, rep.ProblemCount, strings.Join(ps, "; "), ErrBadBackup)
	}
	res.Duration = time.Since(start)
	log.Info("recovery: backup verified", "backup", in, "increments", res.Increments, "objects", rep.Objects, "duration", res.Duration)
	return res, nil
}
