package engine

import (
	"context"
	"errors"
)

// Test-only entry points: production code stages commits (DB.Stage) and
// waits for them (Pending.Wait) in two steps.

// Commit is Stage followed by waiting for the apply: when it returns nil
// the records are visible to Load but not necessarily durable (call
// Pending.Wait). Its refusals are Stage's, and the apply's.
func (db *DB) Commit(ctx context.Context, recs [][]byte) (*Pending, error) {
	p, err := db.Stage(ctx, recs)
	if err != nil {
		return nil, err
	}
	if err := p.waitApplied(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// HasRecord reports whether oid has a stored record.
func (db *DB) HasRecord(oid uint64) (bool, error) {
	_, err := db.Load(oid)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// UncleanShutdown reports whether the last writable owner had not closed
// the database cleanly (meta in_use was set).
func (db *DB) UncleanShutdown() bool { return db.unclean }
