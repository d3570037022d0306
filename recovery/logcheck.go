package recovery

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/durusbdb/durusbdb/bdb/logscan"
	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

// ErrLogDamaged is wrapped by the error of a recovery refused because a
// Berkeley DB log file is damaged in its middle: libdb would take the
// damaged record for the end of the log and discard the intact,
// acknowledged commits after it.
var ErrLogDamaged = errors.New("recovery: a log file is damaged before its end")

// LogDamageError is a damaged log a recovery refused to pass, or one check
// found. errors.Is matches ErrLogDamaged, kv.ErrCorrupt and
// logscan.ErrDamaged.
type LogDamageError struct {
	// Problem names the file and the offset and counts what follows.
	Problem *logscan.Problem
	// Hint says what the operator can do.
	Hint string
}

func (e *LogDamageError) Error() string {
	s := "recovery: " + e.Problem.Error()
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// Unwrap lets errors.Is match ErrLogDamaged, kv.ErrCorrupt and
// logscan.ErrDamaged.
func (e *LogDamageError) Unwrap() []error { return []error{ErrLogDamaged, kv.ErrCorrupt, e.Problem} }

// lostDir is where recovery keeps a copy of the log it lets libdb cut.
const lostDir = "lost"

// logPlan is what a scan of a directory's log means for the recovery
// about to run in it.
type logPlan struct {
	refuse error              // a damage recovery must not pass
	keep   []*logscan.Problem // damage in the last file that recovery cuts: its file is copied to lost/ first
	warn   []*logscan.Problem // damage and gaps recovery may not need: logged, and named if recovery fails
}

// scanLog reads every log file of dir (logscan.ScanDir).
func scanLog(dir string) (*logscan.Log, error) {
	l, err := logscan.ScanDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: read the log of %s: %w", dir, err)
	}
	return l, nil
}

// planLog says what the scan l of dir's log means for a recovery. Damage in the last
// log file that holds records, which libdb's recovery takes for the end
// of the log, is refused unless it reads as a torn write (Problem.Torn)
// or discard is set; either way, when intact records follow the damage,
// its file is kept in lost/ before libdb cuts it. Damage in an earlier
// file, and missing files, are left to libdb's recovery (which fails if
// it needs them), and reported.
func planLog(dir string, l *logscan.Log, discard bool) *logPlan {
	plan := &logPlan{}
	for _, p := range l.Problems(dir) {
		switch {
		case p.Damage == nil || !p.InLast:
			plan.warn = append(plan.warn, p)
		case p.Damage.Resumed == 0:
			// The ordinary end of a crashed log: a record half written.
		case !p.Cuts() || discard:
			plan.keep = append(plan.keep, p) // a torn write, or a loss accepted
		default:
			plan.refuse = &LogDamageError{Problem: p, Hint: fmt.Sprintf(
				"recovery would take offset %d for the end of the log and discard everything after it. "+
					"Restore the latest backup (`durusbdb restore`), or keep this directory as of that offset with "+
					"`durusbdb recover --dir %s --discard-damaged-log` (the damaged file is kept in %s first)",
				p.Damage.Offset, dir, filepath.Join(dir, lostDir))}
		}
	}
	return plan
}

// keepFiles copies the log files of plan.keep into dir/lost before
// recovery cuts them, and returns the copies' paths.
func (plan *logPlan) keepFiles(dir string) ([]string, error) {
	var out []string
	for _, p := range plan.keep {
		if err := os.MkdirAll(filepath.Join(dir, lostDir), 0o750); err != nil {
			return out, fmt.Errorf("recovery: keep the damaged log of %s: %w", dir, err)
		}
		dst := filepath.Join(dir, lostDir, p.File+"."+time.Now().UTC().Format("20060102T150405.000")+".damaged")
		src, err := os.Open(filepath.Join(dir, p.File))
		if err != nil {
			return out, fmt.Errorf("recovery: keep the damaged log of %s: %w", dir, err)
		}
		_, err = copyFileSync(src, dst)
		src.Close()
		if err != nil {
			return out, fmt.Errorf("recovery: keep the damaged log of %s in %s: %w", dir, dst, err)
		}
		out = append(out, dst)
	}
	if len(out) > 0 {
		if err := stagingdir.SyncDir(filepath.Join(dir, lostDir)); err != nil {
			return out, fmt.Errorf("recovery: keep the damaged log of %s: %w", dir, err)
		}
	}
	return out, nil
}

// logKept reports the damage recovery is about to cut; kept are the
// copies keepFiles made.
func (plan *logPlan) logKept(log *slog.Logger, kept []string) {
	for i, p := range plan.keep {
		what := "a write torn by a crash (a zero sector in the damaged stretch: pages of a write never synced, which no acknowledged commit follows)"
		if !p.Torn() {
			what = "damage passed on purpose (--discard-damaged-log, or the end of a hot backup's log copy in a restore)"
		}
		log.Warn("recovery: the log ends at a damaged record; recovery discards the records after it", "problem", p.Error(), "reads_as", what, "kept", kept[i])
	}
}

// logPassed reports, after a recovery that succeeded, the damage and gaps
// it did not need to read.
func (plan *logPlan) logPassed(log *slog.Logger) {
	for _, p := range plan.warn {
		log.Warn("recovery: the log is damaged where this recovery may not read it: a catastrophic recovery, or a restore of a backup holding this log, will fail; take a fresh full backup", "problem", p.Error())
	}
}

// explain adds the plan's findings to the error of a failed recovery,
// which then matches ErrLogDamaged, kv.ErrCorrupt and logscan.ErrDamaged.
func (plan *logPlan) explain(err error) error {
	for _, p := range plan.warn {
		err = fmt.Errorf("%w (%w, %w: %w: the log that recovery reads is damaged or incomplete; restore the latest backup (`durusbdb restore`))", err, ErrLogDamaged, kv.ErrCorrupt, p)
	}
	return err
}

// logProblems lists, for check, the damage and gaps in l, the scan of
// dir's log: all of
// them but, when unclean (the recovery that check runs next cuts it), a
// torn end of the last file.
func logProblems(dir string, l *logscan.Log, unclean bool) []error {
	var out []error
	for _, p := range l.Problems(dir) {
		if unclean && p.Torn() {
			continue
		}
		out = append(out, &LogDamageError{Problem: p})
	}
	return out
}

// ErrLogMissing is wrapped by check's error for a database file whose
// pages carry LSNs past the end of the log: log files are missing.
var ErrLogMissing = errors.New("recovery: log files missing: database pages are newer than the log")

// pagesPastLog reads every page of dir's database files (files, base
// names) and fails, given l, the scan of dir's log, naming the file, the page and both LSNs, if one
// carries an LSN past the end of the intact log: write-ahead logging
// never writes such a page, so the log files after it were removed or
// lost, and the recovery that reads the log would end it early without
// a word (a QA round removed the last log files: recovery and check said
// nothing, and the commits they held were gone).
func pagesPastLog(dir string, l *logscan.Log, files []string) error {
	end, _ := l.End()
	var errs []error
	for _, f := range files {
		p, err := logscan.MaxPageLSN(filepath.Join(dir, f))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p.LSN != (logscan.LSN{}) && !p.LSN.Less(end) {
			errs = append(errs, fmt.Errorf("%s: page %d carries LSN %v, past the end of the log at %v: the log files that held its changes are missing (restore the latest backup) (%w, %w)",
				filepath.Join(dir, f), p.Page, p.LSN, end, ErrLogMissing, kv.ErrCorrupt))
		}
	}
	return errors.Join(errs...)
}
