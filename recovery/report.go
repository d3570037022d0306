package recovery

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// Recovery kinds of a Report.
const (
	KindNormal       = "normal"       // Berkeley DB DB_RECOVER (only if needed)
	KindCatastrophic = "catastrophic" // Berkeley DB DB_RECOVER_FATAL
	KindRepair       = "repair"       // LevelDB RepairDatabase
)

// Report says what one recovery did.
type Report struct {
	Dir     string
	Backend string // "bdb" or "leveldb"
	Kind    string // KindNormal, KindCatastrophic or KindRepair
	// Ran reports that recovery did work: a log was replayed (Berkeley DB)
	// or a repair ran (LevelDB). Normal recovery of a directory whose last
	// owner exited cleanly does nothing.
	Ran bool
	// Unclean: the last writer had not closed the directory (Berkeley DB:
	// its lock file's mark, bdb.NeedsRecovery), so recovery was needed. A
	// `durusbdb recover` of a cleanly closed directory runs anyway.
	Unclean bool
	// Berkeley DB: the log range replayed, as libdb prints LSNs
	// ("[1][28]"), the new checkpoint, the last valid log LSN found, and
	// the log files in the directory after recovery.
	From, To   string
	Checkpoint string
	LastValid  string
	MaxTxnID   string
	LogFiles   []string
	// LevelDB: the files before and after the repair, and the table files
	// the repair could not read and moved to lost/.
	Before, After, Lost []string
	// KeptLogs are the copies, in lost/, of Berkeley DB log files that
	// this recovery cut at a damaged record with intact records after it.
	KeptLogs []string
	Duration time.Duration
	// Messages are libdb's verbose recovery messages (or LevelDB's notes).
	Messages []string
}

// Summary is one line describing the report.
func (r *Report) Summary() string {
	switch {
	case r.Kind == KindRepair:
		return fmt.Sprintf("%s: leveldb repair in %v: %d files before, %d after, %d unreadable table files moved to lost/",
			r.Dir, r.Duration.Round(time.Millisecond), len(r.Before), len(r.After), len(r.Lost))
	case !r.Ran:
		return fmt.Sprintf("%s: %s recovery not needed (last owner exited cleanly); checked in %v",
			r.Dir, r.Kind, r.Duration.Round(time.Millisecond))
	}
	logs := "no log files"
	if n := len(r.LogFiles); n > 0 {
		logs = fmt.Sprintf("%d log files %s … %s", n, r.LogFiles[0], r.LogFiles[n-1])
	}
	span := "replayed log " + r.From + " to " + r.To
	if r.From == "" {
		span = "checked the log to " + r.To + ", nothing to replay"
	}
	s := fmt.Sprintf("%s: %s recovery %s (%s) in %v; checkpoint %s",
		r.Dir, r.Kind, span, logs, r.Duration.Round(time.Millisecond), r.Checkpoint)
	if len(r.KeptLogs) > 0 {
		s += fmt.Sprintf("; the log ended at a damaged record with intact records after it, which recovery discarded: the log file as it was is kept in %s", strings.Join(r.KeptLogs, ", "))
	}
	return s
}

// Log writes the report through log at Info (Warn when normal recovery
// replayed the log of a directory its last owner did not close).
func (r *Report) Log(log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	attrs := []any{"dir", r.Dir, "backend", r.Backend, "kind", r.Kind, "ran", r.Ran, "duration", r.Duration}
	if r.Backend == "bdb" {
		attrs = append(attrs, "from", r.From, "to", r.To, "checkpoint", r.Checkpoint, "log_files", len(r.LogFiles))
		if len(r.LogFiles) > 0 {
			attrs = append(attrs, "first_log", r.LogFiles[0], "last_log", r.LogFiles[len(r.LogFiles)-1])
		}
	} else {
		attrs = append(attrs, "files_before", len(r.Before), "files_after", len(r.After), "lost", strings.Join(r.Lost, ","))
	}
	if r.Ran && r.Kind == KindNormal && r.Unclean {
		log.Warn("recovery: the last owner did not exit cleanly; log replayed", attrs...)
		return
	}
	log.Info("recovery: "+r.Summary(), attrs...)
}

var (
	reStart   = regexp.MustCompile(`Recovery starting from (\[\d+\]\[\d+\])`)
	reLast    = regexp.MustCompile(`Finding last valid log LSN: file: (\d+) offset (\d+)`)
	reMaxTxn  = regexp.MustCompile(`Maximum transaction ID (\S+) recovery checkpoint (\[\d+\]\[\d+\])`)
	reBDBCode = regexp.MustCompile(`^BDB\d+ `)
)

// parseMessages fills the Berkeley DB fields of r from libdb's verbose
// recovery output.
func (r *Report) parseMessages(out string) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		r.Messages = append(r.Messages, line)
		msg := reBDBCode.ReplaceAllString(line, "")
		if m := reStart.FindStringSubmatch(msg); m != nil {
			r.From = m[1]
			r.Ran = true
		}
		// libdb prints this whenever it opens the log without a region,
		// recovery or not.
		if m := reLast.FindStringSubmatch(msg); m != nil {
			r.LastValid = "[" + m[1] + "][" + m[2] + "]"
		}
		if m := reMaxTxn.FindStringSubmatch(msg); m != nil {
			r.MaxTxnID, r.Checkpoint = m[1], m[2]
		}
	}
}

func lsn(file, off uint32) string { return fmt.Sprintf("[%d][%d]", file, off) }
