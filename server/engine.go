package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/durusbdb/durusbdb/engine"
)

// Engine adapts an open engine database to Storage, mapping the engine's
// sentinel errors to ErrNoRecord and ErrDangling.
func Engine(db *engine.DB) Storage { return engineStorage{db} }

type engineStorage struct{ db *engine.DB }

func (e engineStorage) Load(oid uint64) ([]byte, error) {
	rec, err := e.db.Load(oid)
	if err != nil && errors.Is(err, engine.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrNoRecord, err)
	}
	return rec, err
}

func (e engineStorage) AllocOIDs(n int) (uint64, error) { return e.db.AllocOIDs(n) }

func (e engineStorage) AllocCursor() uint64 { return e.db.AllocCursor() }

func (e engineStorage) Commit(ctx context.Context, recs [][]byte) (Pending, error) {
	p, err := e.db.Commit(ctx, recs)
	if err != nil {
		if errors.Is(err, engine.ErrDangling) {
			return nil, fmt.Errorf("%w: %w", ErrDangling, err)
		}
		return nil, err
	}
	return p, nil
}

func (e engineStorage) Pack() bool { return e.db.Pack() }

func (e engineStorage) ReadOnly() bool { return e.db.ReadOnly() }
