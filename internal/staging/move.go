package staging

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/durusbdb/durusbdb/internal/dbdir"
)

// InsidePrefix starts the name of a staging directory made inside an
// existing target directory (For): a dotfile, which dbdir ignores.
const InsidePrefix = ".durusbdb-staging-"

// ErrBusy is Settle's error when a process running now is moving an
// output into the same directory.
var ErrBusy = errors.New("another process is writing into the directory")

// For removes the stale staging directories of earlier runs (see New) and
// makes the staging directory of an output that will end at target, a
// directory. When target does not exist, beside it (named prefix*): the
// output later appears there with one rename. When target is an existing
// directory, inside it (InsidePrefix*): an empty directory given as the
// output may be a mount point, whose file system a rename from its parent
// cannot reach (EXDEV), and the staged files then fill the disk they are
// meant for, not the parent's; the stale prefix* directories beside it,
// left by runs killed while target did not exist, are removed all the
// same. Call Settle(target) first.
func For(target, prefix, what string, mode fs.FileMode, log *slog.Logger) (*Dir, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, fmt.Errorf("staging directory for %s: %w", target, err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		RemoveStale(filepath.Dir(abs), prefix, what, log)
		return New(abs, InsidePrefix, what, mode, log)
	}
	return New(filepath.Dir(abs), prefix, what, mode, log)
}

// MountPoint reports whether dir is the root of a mounted file system
// (its device differs from its parent's): a directory no rename can move
// or replace.
func MountPoint(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	d, ok := device(abs)
	pd, pok := device(filepath.Dir(abs))
	return ok && pok && d != pd
}

// SameDevice reports whether a and b are on one device, so that a rename
// or a hard link from one to the other can work (a link also fails across
// two mounts of one file system); false when either cannot be read.
func SameDevice(a, b string) bool {
	da, aok := device(a)
	db, bok := device(b)
	return aok && bok && da == db
}

// device returns the device path is on.
func device(path string) (uint64, bool) {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return 0, false
	}
	return uint64(st.Dev), true
}

// ReadOnlyPrefix starts the name of the private copy a read-only open of
// a LevelDB database makes inside its directory (when TMPDIR is on
// another file system).
const ReadOnlyPrefix = ".durusbdb-ro-"

// RemoveStaleInside removes the staging directories For made inside dir,
// and the private copies of read-only opens, whose process was killed
// (see RemoveStale), and returns their paths.
func RemoveStaleInside(dir string, log *slog.Logger) []string {
	removed := RemoveStale(dir, InsidePrefix, "restore, copy, migrate or backup", log)
	return append(removed, RemoveStale(dir, ReadOnlyPrefix, "read-only open", log)...)
}

// Inside reports whether the staging directory is inside target (For
// made it there).
func (d *Dir) Inside(target string) bool {
	abs, err := filepath.Abs(target)
	return err == nil && filepath.Dir(d.Path) == abs
}

// journal is what MoveInto writes in an existing target before its first
// rename (dbdir.MoveJournal): the entries it moves, in order. The last
// one present in the target means the move completed.
type journal struct {
	Entries []string `json:"entries"`
}

// MoveInto puts the contents of the directory src in the place of target,
// a directory that does not exist or holds nothing src has. When target
// does not exist, with one rename of src: a crash leaves nothing there or
// all of it. Into an existing target, which stays itself (a mount point, or
// a directory owned by the service's user), entry by entry, ordered by
// rank (lowest first; entries of negative rank stay in src): a journal
// (dbdir.MoveJournal) written in target before the first rename and
// removed after the last lets Settle undo a move a crash interrupted, and
// dbdir.Detect refuse the directory until then; the directory is synced
// between ranks. A rename that fails moves the entries already moved back
// (target as it was); a crash leaves the journal to Settle. src must be on target's
// file system (For). When run as root, everything moved into an existing
// target gets its owner first (a server running as the database's user
// must be able to write the new files). The new names are synced.
func MoveInto(src, target string, rank func(name string, mode fs.FileMode) int) error {
	return moveInto(src, target, rank, os.Rename)
}

// moveInto is MoveInto with the rename function given (tests interrupt
// it).
func moveInto(src, target string, rank func(string, fs.FileMode) int, rename func(oldpath, newpath string) error) error {
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(filepath.Clean(target))
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("move into %s: %w", target, err)
		}
		if err := rename(src, target); err != nil {
			return fmt.Errorf("move into %s: %w", target, err)
		}
		return SyncDir(parent)
	}
	if err != nil {
		return fmt.Errorf("move into %s: %w", target, err)
	}
	if err := chownLike(src, fi); err != nil {
		return fmt.Errorf("move into %s: %w", target, err)
	}
	all, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("move into %s: %w", target, err)
	}
	type entry struct {
		name string
		rank int
	}
	var ents []entry
	for _, e := range all {
		if r := rank(e.Name(), e.Type()); r >= 0 {
			ents = append(ents, entry{e.Name(), r})
		}
	}
	if len(ents) == 0 {
		return nil // nothing to move (and no journal Settle could not read)
	}
	slices.SortStableFunc(ents, func(a, b entry) int { return a.rank - b.rank })
	var j journal
	for _, e := range ents {
		if _, err := os.Lstat(filepath.Join(target, e.name)); err == nil {
			return fmt.Errorf("move into %s: %s is there already", target, e.name)
		}
		j.Entries = append(j.Entries, e.name)
	}
	if err := writeJournal(target, j); err != nil {
		return fmt.Errorf("move into %s: %w", target, err)
	}
	for i, e := range ents {
		// The renames of one rank are made durable before the next rank's
		// begin: after a power loss, no marker is there without the files
		// moved before it.
		var err error
		if i > 0 && e.rank != ents[i-1].rank {
			err = SyncDir(target)
		}
		if err == nil {
			err = rename(filepath.Join(src, e.name), filepath.Join(target, e.name))
		}
		if err != nil {
			return undoMove(src, target, j.Entries[:i], fmt.Errorf("move into %s: %w", target, err))
		}
	}
	if err := SyncDir(target); err != nil {
		return err // every entry moved: the journal says the move completed
	}
	if err := os.Remove(filepath.Join(target, dbdir.MoveJournal)); err != nil {
		return fmt.Errorf("move into %s: remove the journal: %w", target, err)
	}
	return SyncDir(target)
}

// undoMove moves the entries moved (in order) back from target to src
// after a move into target failed with err, and removes the journal: target
// is then as it was. Where an entry cannot be moved back, the journal
// stays for Settle, and the error says so. It returns err, wrapped.
func undoMove(src, target string, moved []string, err error) error {
	for i := len(moved) - 1; i >= 0; i-- {
		if uerr := os.Rename(filepath.Join(target, moved[i]), filepath.Join(src, moved[i])); uerr != nil {
			return fmt.Errorf("%w (and moving %s back failed: %v; the next run removes what was moved, see %s)", err, moved[i], uerr, dbdir.MoveJournal)
		}
	}
	if uerr := SyncDir(target); uerr != nil {
		return fmt.Errorf("%w (undone, then: %v)", err, uerr)
	}
	if uerr := os.Remove(filepath.Join(target, dbdir.MoveJournal)); uerr != nil {
		return fmt.Errorf("%w (undone, but the journal stays: %v)", err, uerr)
	}
	return err
}

// writeJournal writes j to target's journal, synced, through a temporary
// file renamed into place: a crash leaves a whole journal or none.
func writeJournal(target string, j journal) error {
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	tmp := filepath.Join(target, dbdir.MoveJournal+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write the journal: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(target, dbdir.MoveJournal))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write the journal: %w", err)
	}
	return SyncDir(target)
}

// moveDone reports whether the move j journals had completed in target:
// its last entry is there (or it moved nothing).
func moveDone(target string, j journal) bool {
	if len(j.Entries) == 0 {
		return true
	}
	_, err := os.Lstat(filepath.Join(target, j.Entries[len(j.Entries)-1]))
	return err == nil
}

// Settle makes the existing directory target ready for a new output
// after a process writing one into it was killed (a missing target is
// left alone). It removes the stale staging directories inside target
// (For), and undoes an interrupted MoveInto: when the last entry its
// journal names is in target the move had completed and only the journal
// goes; otherwise every entry the journal names is removed from target
// (the move put them there: target held none of them before), then the
// journal. It returns ErrBusy while a running process stages inside
// target, and the names it removed.
func Settle(target string, log *slog.Logger) ([]string, error) {
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("settle %s: %w", target, err)
	}
	RemoveStaleInside(target, log)
	ents, err := os.ReadDir(target)
	if err != nil {
		return nil, fmt.Errorf("settle %s: %w", target, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), InsidePrefix) {
			return nil, fmt.Errorf("settle %s: %s: %w", target, e.Name(), ErrBusy)
		}
	}
	os.Remove(filepath.Join(target, dbdir.MoveJournal+".tmp"))
	jp := filepath.Join(target, dbdir.MoveJournal)
	data, err := os.ReadFile(jp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("settle %s: %w", target, err)
	}
	var j journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("settle %s: unreadable journal %s (%v): remove the files of the interrupted move by hand", target, jp, err)
	}
	var removed []string
	if !moveDone(target, j) {
		for _, name := range j.Entries {
			if name == "" || name == "." || name == ".." || strings.ContainsRune(name, os.PathSeparator) {
				return removed, fmt.Errorf("settle %s: journal %s names %q", target, jp, name)
			}
			p := filepath.Join(target, name)
			if _, err := os.Lstat(p); err != nil {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				return removed, fmt.Errorf("settle %s: %w", target, err)
			}
			removed = append(removed, name)
		}
		if err := SyncDir(target); err != nil {
			return removed, err
		}
		log.Warn("removed the files an interrupted move had put into the directory", "dir", target, "files", len(removed), "names", removed)
	}
	if err := os.Remove(jp); err != nil {
		return removed, fmt.Errorf("settle %s: %w", target, err)
	}
	return removed, SyncDir(target)
}
