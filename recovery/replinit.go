package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// RepInitFile is the file libdb keeps in a replication site's directory
// while an internal init copies the databases from the master
// (REP_INITNAME). A site stopped in the middle leaves it, with database
// files that are a partial copy: libdb's replication-aware open (the site
// rejoining its group) removes them and starts the copy again; standalone
// recovery knows nothing of it and would leave them incomplete.
const RepInitFile = "__db.rep.init"

// ErrSyncUnfinished: the directory is a replication site stopped during
// an internal init (see RepInitFile); only rejoining the group completes
// it.
var ErrSyncUnfinished = errors.New("recovery: replication sync-up unfinished")

// CheckSyncFinished returns an error wrapping ErrSyncUnfinished, naming
// the marker file and saying to rejoin the group, if dir holds
// RepInitFile; nil otherwise.
func CheckSyncFinished(dir string) error {
	f := filepath.Join(dir, RepInitFile)
	if _, err := os.Stat(f); err != nil {
		return nil
	}
	return fmt.Errorf("%w: %s is there, so this replication site was stopped while it copied the databases from its master (libdb's internal init): its database files are incomplete, and standalone recovery or a standalone open cannot complete them; rejoin the group to re-initialize it (durusbdb serve --dir %s with its --repl-listen and --repl-peer flags, without --repl-init)", ErrSyncUnfinished, f, dir)
}
