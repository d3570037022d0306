package recovery

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
)

// stagePrefix starts the name of every staging directory a backup creates
// beside its output (and an increment inside the backup directory). A
// staging directory is flocked while its backup works, so one that can be
// locked belongs to a backup that was killed or crashed.
const stagePrefix = ".durusbdb-backup-"

// RemoveStaleStaging removes what backups into out that were killed
// (SIGKILL, a crash) left behind, as Backup does before it stages (all
// through stagingdir.RemoveStale): the staging directories named
// .durusbdb-backup-* in out's parent and, when out is an existing
// directory, the ones made inside it (stagingdir.RemoveStaleInside),
// except those a running process holds. It returns the paths removed,
// each logged. A backup whose output is written by another process than
// Backup's (a LevelDB backup taken by the database's server and streamed
// to the client, which writes out) calls it where out is written.
func RemoveStaleStaging(out string, log *slog.Logger) []string {
	abs, err := filepath.Abs(out)
	if err != nil {
		return nil
	}
	removed := stagingdir.RemoveStale(filepath.Dir(abs), stagePrefix, "backup", log)
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		removed = append(removed, stagingdir.RemoveStaleInside(abs, log)...)
	}
	return removed
}

// staging is a backup's unique, flocked, temporary directory.
type staging struct {
	*stagingdir.Dir
	dir string
}

// newStaging removes the stale staging directories in parent, then
// creates a new one there (mode 0750: it becomes the backup directory,
// the mode backups always had) and locks it.
func newStaging(parent string, log *slog.Logger) (*staging, error) {
	d, err := stagingdir.New(parent, stagePrefix, "backup", 0o750, log)
	if err != nil {
		return nil, err
	}
	return &staging{Dir: d, dir: d.Path}, nil
}

// stagingFor removes the stale staging directories of earlier backups,
// then creates the staging directory of an output directory out:
// inside out when out is an existing directory (a mount point: the
// staged files then go to its file system), else beside it
// (stagingdir.For).
func stagingFor(out string, log *slog.Logger) (*staging, error) {
	d, err := stagingdir.For(out, stagePrefix, "backup", 0o750, log)
	if err != nil {
		return nil, err
	}
	return &staging{Dir: d, dir: d.Path}, nil
}

// keep marks the staging directory as moved into place: release leaves
// what is at its old path alone.
func (s *staging) keep() { s.Keep() }

// release unlocks the staging directory and, unless keep was called,
// removes it with everything in it.
func (s *staging) release() { s.Release() }

// syncDir makes the new names in dir durable (fsync of the directory).
func syncDir(dir string) error { return stagingdir.SyncDir(dir) }

// BackupStage is the staging directory of a directory backup whose files
// another process sends (a LevelDB database's server, over its control
// socket, to the client that writes OUT): the files go into it, and
// Publish moves it into place at out only once the backup is complete,
// as Backup does, so that a backup killed meanwhile leaves nothing at out.
type BackupStage struct {
	st  *staging
	out string
}

// StageBackupDir checks that out can take a full directory backup (it does
// not exist or is an empty directory, after removing what killed backups
// left: stagingdir.Settle), then creates and locks its staging directory.
// The caller calls Release when done, after Publish or not.
func StageBackupDir(out string, log *slog.Logger) (*BackupStage, error) {
	abs, err := filepath.Abs(out)
	if err == nil {
		var st *staging
		if st, err = stageBackupDir(out, abs, log); err == nil {
			return &BackupStage{st: st, out: abs}, nil
		}
	}
	return nil, fmt.Errorf("recovery: backup into %s: %w", out, err)
}

// stageBackupDir makes the staging directory of a full directory backup
// into out (absOut, absolute): what killed backups left in out is removed
// (stagingdir.Settle), out must then be missing or empty, and the staging
// directory goes inside out if it exists, else beside it (stagingFor).
func stageBackupDir(out, absOut string, log *slog.Logger) (*staging, error) {
	if _, err := stagingdir.Settle(out, log); err != nil {
		return nil, err
	}
	if err := checkEmptyOut(out, ""); err != nil {
		return nil, err
	}
	return stagingFor(absOut, log)
}

// Dir is the staging directory (absolute): where the backup's files and
// its manifest are written.
func (s *BackupStage) Dir() string { return s.st.dir }

// Publish moves the complete staging directory into place at out (see
// moveIntoPlace); it refuses one without a manifest, which is not a
// whole backup.
func (s *BackupStage) Publish() error {
	if _, err := os.Stat(filepath.Join(s.st.dir, ManifestName)); err != nil {
		return fmt.Errorf("recovery: backup into %s: the staged backup has no manifest: %w", s.out, err)
	}
	if err := moveIntoPlace(s.st, s.out); err != nil {
		return fmt.Errorf("recovery: backup into %s: %w", s.out, err)
	}
	return nil
}

// Release unlocks the staging directory and removes it unless Publish
// moved it into place.
func (s *BackupStage) Release() { s.st.release() }
