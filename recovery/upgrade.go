package recovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/kv"
)

// Errors of Upgrade and CheckFormat.
var (
	// ErrUnclean: the directory's last writer did not shut down cleanly,
	// so its old log files still matter and must not be removed.
	ErrUnclean = errors.New("recovery: the environment was not shut down cleanly")
	// ErrNeedsUpgrade: the directory was written by an older Berkeley DB
	// release; run `durusbdb upgrade --dir DIR`.
	ErrNeedsUpgrade = errors.New("recovery: written by an older Berkeley DB release; run `durusbdb upgrade --dir DIR` first")
)

// UpgradeOptions configure Upgrade.
type UpgradeOptions struct {
	Options
	// BackupDir receives the copy of the directory made before anything
	// changes; it must not exist or be empty. "" means a sibling of the
	// directory named DIR.pre-upgrade-YYYYMMDDTHHMMSS (with -2, -3, ... if
	// that exists). The copy is built in a staging directory beside it and
	// renamed into place when complete.
	BackupDir string
}

// FileFormat is the on-disk format of one file of the directory.
type FileFormat struct {
	Name    string
	Kind    string // "log", "btree", "hash"
	Version uint32
	Current bool // the format Berkeley DB 5.3 writes
}

// UpgradeReport says what Upgrade did.
type UpgradeReport struct {
	Dir, BackupDir string
	// Before and After are the formats of the log and database files.
	Before, After []FileFormat
	// Upgraded lists database files whose format DB->upgrade changed.
	Upgraded []string
	// LogsRemoved lists the old log files removed; LSNReset the database
	// files whose LSNs were reset (both empty if the logs were current).
	LogsRemoved, LSNReset []string
	// NoOp is set when everything was already in 5.3 format: only the
	// backup copy was made.
	NoOp     bool
	Duration time.Duration
}

// Upgrade upgrades a Berkeley DB directory written by an older release to
// Berkeley DB 5.3's formats (FORMAT.md §7; see the package doc). No
// process may have the directory open (kv.ErrInUse), and a directory that
// needs its logs removed must have been shut down cleanly (ErrUnclean).
func Upgrade(ctx context.Context, dir string, opts UpgradeOptions) (*UpgradeReport, error) {
	kind, err := backend.Detect(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: upgrade %s: %w", dir, err)
	}
	switch kind {
	case backend.BDB:
		return upgradeBDB(ctx, dir, opts)
	case backend.LevelDB:
		return nil, fmt.Errorf("recovery: upgrade %s: a LevelDB directory has nothing to upgrade (upgrade applies to Berkeley DB directories)", dir)
	}
	return nil, fmt.Errorf("recovery: upgrade %s: the directory holds no database: %w", dir, kv.ErrNotDB)
}

// CheckFormat returns an error wrapping ErrNeedsUpgrade, naming the
// directory, the old files and the command to run, if dir is a Berkeley
// DB directory with log or database files in an older release's format;
// nil otherwise (also for LevelDB and empty directories). A server can
// call it before opening dir.
func CheckFormat(dir string) error {
	kind, err := backend.Detect(dir)
	if err != nil || kind != backend.BDB || !bdbCompiled() {
		return nil
	}
	if CheckSyncFinished(dir) != nil {
		return nil // partial copies of the master's files, which libdb's replication-aware open redoes
	}
	formats, err := readFormats(dir)
	if err != nil {
		return err
	}
	var old []string
	for _, f := range formats {
		if !f.Current {
			old = append(old, fmt.Sprintf("%s (%s version %d)", f.Name, f.Kind, f.Version))
		}
	}
	if len(old) > 0 {
		return fmt.Errorf("recovery: %s: files %v are from an older Berkeley DB release: stop every process using it and run `durusbdb upgrade --dir %s`: %w", dir, old, dir, ErrNeedsUpgrade)
	}
	return nil
}
