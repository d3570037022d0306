// Package dbdir holds the one detector of what a database directory holds
// (Detect): which files may sit there besides a database's own (Ignorable),
// so that a directory holding only those is empty (a new database may be
// created in it), and which files make it a Berkeley DB or a LevelDB
// database (FORMAT.md §5). backend (detection), bdb and leveldb (their
// open) all call Detect, so no two of them disagree about a directory.
package dbdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// Kind is what a directory holds.
type Kind int

// The kinds of directory Detect tells apart.
const (
	// Empty: nothing but ignorable files; a database may be created here.
	Empty Kind = iota
	// BDB: a Berkeley DB database (meta.db present).
	BDB
	// LevelDB: a LevelDB database (CURRENT present, no meta.db).
	LevelDB
	// Foreign: files of neither layout.
	Foreign
)

// MoveJournal is the file a tool writes into an existing directory before
// it moves a new database's files in one by one, and removes after the
// last (staging.MoveInto). Found there without a Marker, it means the move
// was interrupted: Detect refuses the directory (ErrInterruptedMove) until
// the tool runs again and removes the partial files (staging.Settle).
const MoveJournal = ".durusbdb-moving"

// ErrInterruptedMove is Detect's error for a directory holding part of a
// database whose move into it was interrupted (MoveJournal).
var ErrInterruptedMove = errors.New("a database was being moved into the directory and the move was interrupted")

// Layout is Detect's answer.
type Layout struct {
	Kind Kind
	// Files are the entries that are not ignorable, sorted.
	Files []string
}

// List names the layout's files for an error message, at most ten.
func (l Layout) List() string {
	names := l.Files
	if len(names) > 10 {
		names = append(slices.Clip(names[:10]), "…")
	}
	return strings.Join(names, ", ")
}

// Detect reads directory dir and says what it holds: meta.db makes it
// BDB, else CURRENT makes it LevelDB, else it is Empty if every entry is
// Ignorable and Foreign otherwise. A path that is not a directory gives an
// error wrapping syscall.ENOTDIR; a missing one, fs.ErrNotExist; one
// holding MoveJournal and no Marker, ErrInterruptedMove.
func Detect(dir string) (Layout, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return Layout{}, fmt.Errorf("dbdir: %w", err)
	}
	if !fi.IsDir() {
		return Layout{}, fmt.Errorf("dbdir: %s: %w", dir, syscall.ENOTDIR)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return Layout{}, fmt.Errorf("dbdir: read directory: %w", err)
	}
	var l Layout
	has := map[string]bool{}
	repInit, moving := false, false
	for _, e := range ents {
		repInit = repInit || e.Name() == repInitFile
		moving = moving || e.Name() == MoveJournal
		if !Ignorable(e.Name(), e.Type()) {
			l.Files = append(l.Files, e.Name())
			has[e.Name()] = true
		}
	}
	slices.Sort(l.Files)
	if moving && !has["meta.db"] && !has["CURRENT"] {
		return l, fmt.Errorf("dbdir: %s holds part of a database (%s): %w (%s is there); run the durusbdb restore, copy, migrate or backup that was moving it again: it removes these files first",
			dir, l.List(), ErrInterruptedMove, MoveJournal)
	}
	switch {
	case has["meta.db"]: // Marker
		l.Kind = BDB
	case has["CURRENT"]:
		l.Kind = LevelDB
	case repInit:
		// A replication site killed during its first copy from the
		// master, before meta.db existed: Berkeley DB's, for its
		// replication-aware open to copy again (a standalone open
		// refuses it: recovery.CheckSyncFinished).
		l.Kind = BDB
	case len(l.Files) == 0:
		l.Kind = Empty
	default:
		l.Kind = Foreign
	}
	return l, nil
}

// Marker reports whether name is a file whose presence makes Detect take
// a directory for a database (meta.db, CURRENT): tools that move a new
// database into place entry by entry move these last.
func Marker(name string) bool { return name == "meta.db" || name == "CURRENT" }

// MoveRank orders the files of a new database moved one by one into an
// existing directory (staging.MoveInto): first the files that make a
// directory Foreign, then the Ignorable ones (logs, region files), the
// Marker files last; durusbdb.lock not at all (-1: it belongs to whoever
// opens the directory). So an interrupted move never leaves a directory
// taken for a database, nor one that looks empty but holds another
// database's log files.
func MoveRank(name string, mode fs.FileMode) int {
	switch {
	case name == "durusbdb.lock":
		return -1
	case Marker(name):
		return 2
	case Ignorable(name, mode):
		return 1
	}
	return 0
}

// Ignorable reports whether the directory entry named name, of type mode
// (fs.DirEntry.Type()), may sit in an empty database directory: dotfiles;
// unix sockets (the server binds its socket, and its control socket, before
// it opens the database); durusbdb's lock file; text logs next to it
// (*.log.txt); and the files of a Berkeley DB environment whose creation
// was interrupted before any database file existed (region files __db.*,
// log files log.NNNNNNNNNN, DB_CONFIG), which hold no data and which the
// next creation recovers and reuses.
func Ignorable(name string, mode fs.FileMode) bool {
	return mode&fs.ModeSocket != 0 || strings.HasPrefix(name, ".") ||
		name == "durusbdb.lock" || name == "durusbdb.sock" || strings.HasSuffix(name, ".log.txt") ||
		EnvFile(name)
}

// EnvFile reports whether name is a Berkeley DB environment file: a region
// file or the register (__db.*), a log file (log.NNNNNNNNNN) or DB_CONFIG.
func EnvFile(name string) bool {
	return strings.HasPrefix(name, "__db.") || name == "DB_CONFIG" || LogNumber(name) > 0
}

// LogNumber returns the number of the Berkeley DB log file name
// (log.NNNNNNNNNN, ten digits), or 0 if name is not one.
func LogNumber(name string) int {
	digits, ok := strings.CutPrefix(name, "log.")
	if !ok || len(digits) != 10 {
		return 0
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// repInitFile is the marker libdb keeps in a replication site's directory
// while an internal init (the copy from the master) is unfinished
// (recovery.RepInitFile, which this package cannot import).
const repInitFile = "__db.rep.init"
