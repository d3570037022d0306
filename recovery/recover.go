package recovery

import (
	"context"
	"fmt"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/kv"
)

// RecoverOptions configure Recover.
type RecoverOptions struct {
	Options
	// Catastrophic runs Berkeley DB's DB_RECOVER_FATAL: every log file in
	// the directory is replayed from the first. Copy archived log files
	// into the directory first. Ignored for LevelDB, whose recovery is
	// always a repair.
	Catastrophic bool
	// DiscardDamagedLog lets Berkeley DB recovery end the log at a
	// damaged record in the middle of the last log file, discarding the
	// intact records after it (a copy of the file is kept in lost/ first).
	// Without it such a recovery is refused with a *LogDamageError: libdb
	// would discard them silently.
	DiscardDamagedLog bool
}

// Recover recovers the database in dir, which no server may have open:
// Berkeley DB normal or catastrophic recovery, or a LevelDB repair. The
// report says what was done; it is also logged.
func Recover(ctx context.Context, dir string, opts RecoverOptions) (*Report, error) {
	kind, err := backend.Detect(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: recover %s: %w", dir, err)
	}
	switch kind {
	case backend.BDB:
		o := opts.Options
		o.discardDamagedLog = opts.DiscardDamagedLog
		r, err := recoverBDB(ctx, dir, opts.Catastrophic, false, o)
		if err != nil {
			return r, err
		}
		r.Log(opts.logger())
		return r, nil
	case backend.LevelDB:
		return repairLevelDB(ctx, dir, opts.Options)
	case "":
		return nil, fmt.Errorf("recovery: recover %s: the directory holds no database: %w", dir, kv.ErrNotDB)
	}
	return nil, fmt.Errorf("recovery: recover %s: unknown backend %q", dir, kind)
}

// AtOpen runs, just before the engine opens dir, the normal recovery that
// the open would run anyway (Berkeley DB: DB_RECOVER, here only when the
// last writer did not close the directory, bdb.NeedsRecovery), and logs what
// it did through opts.Logger: the log range replayed and the time taken,
// or that nothing was needed. It returns nil and does nothing for an empty
// directory or a LevelDB one (LevelDB replays its log inside its own
// open). It fails with kv.ErrInUse if another process owns dir.
func AtOpen(ctx context.Context, dir string, opts Options) (*Report, error) {
	kind, err := backend.Detect(dir)
	if err != nil || kind != backend.BDB {
		return nil, nil // the engine's open reports these
	}
	if !bdbCompiled() {
		return nil, nil
	}
	r, err := recoverBDB(ctx, dir, false, true, opts)
	if err != nil {
		return r, err
	}
	r.Log(opts.logger())
	return r, nil
}
