package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/engine"
)

// Engine adapts an open engine database to Storage, mapping the engine's
// sentinel errors to ErrNoRecord and ErrDangling.
func Engine(db *engine.DB) Storage { return engineStorage{db} }

type engineStorage struct{ db *engine.DB }

func (e engineStorage) Load(oid uint64) ([]byte, error) {
	return loadResult(e.db.Load(oid))
}

// LoadBounded implements boundedLoader with engine.DB.LoadBounded.
func (e engineStorage) LoadBounded(oid uint64, limit int) ([]byte, error) {
	return loadResult(e.db.LoadBounded(oid, limit))
}

// Caches implements recordKeeper with engine.DB.Caches.
func (e engineStorage) Caches(oid uint64, rec []byte) bool { return e.db.Caches(oid, rec) }

// recordKeeper is a Storage that may keep the records its loads return
// (the engine's record cache): a reply of one it keeps frees nothing when
// it is written, so its charge goes back to the budget of bytes in flight
// without counting as garbage awaiting a collection.
type recordKeeper interface {
	// Caches reports whether the storage holds rec, the very memory its
	// load of oid returned.
	Caches(oid uint64, rec []byte) bool
}

// keptBy returns st's Caches if st is a recordKeeper, else nil.
func keptBy(st Storage) func(oid uint64, buf []byte) bool {
	if k, ok := st.(recordKeeper); ok {
		return k.Caches
	}
	return nil
}

// loadResult maps an engine load's error to the Storage contract: a
// missing record wraps ErrNoRecord, a bounded load's refusal is a
// *loadSizeError.
func loadResult(rec []byte, err error) ([]byte, error) {
	if err == nil {
		return rec, nil
	}
	var se *engine.RecordSizeError
	switch {
	case errors.As(err, &se):
		return nil, &loadSizeError{size: int64(se.Size), need: int64(se.Need), err: err}
	case errors.Is(err, engine.ErrNotFound):
		return nil, fmt.Errorf("%w: %w", ErrNoRecord, err)
	}
	return rec, err
}

// boundedLoader is a Storage whose loads can be bounded, so that the
// memory of a large record is charged to the budget of bytes in flight
// before the record is read rather than after (the engine's is): without
// it, every connection loading a large record at once would hold a copy
// before any waited for room.
type boundedLoader interface {
	// LoadBounded is Load for a record whose read holds at most limit
	// bytes: one that would hold more, when the storage can tell before
	// reading it, is not read and the error is a *loadSizeError saying
	// how many bytes to charge before calling again. A record already in
	// memory, or one whose size could not be known first, is returned
	// whatever its length.
	LoadBounded(oid uint64, limit int) ([]byte, error)
}

// loadSizeError is boundedLoader's refusal of a record larger than the
// bound: size is the record's length, need the bytes its read would hold
// (more than size where the storage copies it several times).
type loadSizeError struct {
	size, need int64
	err        error
}

func (e *loadSizeError) Error() string { return e.err.Error() }

func (e *loadSizeError) Unwrap() error { return e.err }

// loadSize returns the *loadSizeError of a refused load, nil if err is
// not one.
func loadSize(err error) *loadSizeError {
	if err == nil {
		return nil // before le, which escapes: no allocation per load
	}
	var le *loadSizeError
	if errors.As(err, &le) {
		return le
	}
	return nil
}

func (e engineStorage) AllocOIDs(n int) (uint64, error) { return e.db.AllocOIDs(n) }

func (e engineStorage) AllocCursor() uint64 { return e.db.AllocCursor() }

func (e engineStorage) Stage(ctx context.Context, recs [][]byte) (Pending, error) {
	p, err := e.db.Stage(ctx, recs)
	if err != nil {
		return nil, engineError(err)
	}
	return enginePending{p}, nil
}

// enginePending maps the outcome of a staged engine commit.
type enginePending struct{ p *engine.Pending }

func (p enginePending) Wait(ctx context.Context) error { return engineError(p.p.Wait(ctx)) }

// WaitsForFlush implements flushPending.
func (p enginePending) WaitsForFlush() bool { return p.p.WaitsForFlush() }

// engineError maps the engine's commit errors to the server's sentinels.
func engineError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrDangling):
		return fmt.Errorf("%w: %w", ErrDangling, err)
	case errors.Is(err, engine.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.Is(err, engine.ErrNotDurable):
		return fmt.Errorf("%w: %w", ErrNotDurable, err)
	case errors.Is(err, engine.ErrPermFailed):
		return fmt.Errorf("%w: %w", ErrNotAcked, err)
	case errors.Is(err, engine.ErrNoQuorum):
		return fmt.Errorf("%w: %w", ErrNoQuorum, err)
	case errors.Is(err, engine.ErrNotMaster):
		return fmt.Errorf("%w: %w", ErrReplica, err)
	}
	return err
}

// MasterAddr implements Forwarder.
func (e engineStorage) MasterAddr() (string, bool) {
	if !e.db.IsReplica() {
		return "", false
	}
	return e.db.Role().MasterDurusAddr, true
}

// WaitReplicated implements Forwarder.
func (e engineStorage) WaitReplicated(ctx context.Context, tok engine.Token, timeout time.Duration) error {
	return e.db.WaitReplicated(ctx, tok, timeout)
}

// ChangesStarted implements Forwarder.
func (e engineStorage) ChangesStarted() uint64 { return e.db.ChangesStarted() }

// ChangesReported implements Forwarder.
func (e engineStorage) ChangesReported() uint64 { return e.db.ChangesReported() }

// ChangedSince implements conflictChecker.
func (e engineStorage) ChangedSince(pos uint64, oids []uint64) (bool, error) {
	return e.db.ChangedSince(pos, oids)
}

// Token implements tokenPending.
func (p enginePending) Token() engine.Token { return p.p.Token() }

func (e engineStorage) Pack() bool { return e.db.Pack() }

func (e engineStorage) ReadOnly() bool { return e.db.ReadOnly() }
