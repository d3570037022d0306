package server

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/durusbdb/durusbdb/engine"
)

// storeKinds lists the storages the protocol tests run against: the
// in-memory fake and the engine on every compiled backend.
func storeKinds() []storeKind {
	ks := []storeKind{memKind(), engineKind("leveldb")}
	return append(ks, bdbKinds()...)
}

// engineStore is an engine-backed Storage whose removals reach the server.
type engineStore struct {
	Storage
	db    *engine.DB
	relay *RemoveRelay
}

// LoadBounded and Caches make the engine-backed test storage a
// boundedLoader and a recordKeeper, as Engine's is (engineStore embeds the
// Storage interface, which hides them), so that every protocol test of an
// engine kind loads as the server does.
func (e *engineStore) LoadBounded(oid uint64, limit int) ([]byte, error) {
	return e.Storage.(boundedLoader).LoadBounded(oid, limit)
}

// Caches: see LoadBounded.
func (e *engineStore) Caches(oid uint64, rec []byte) bool {
	return e.Storage.(recordKeeper).Caches(oid, rec)
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openEngine opens a fresh engine database in a temporary directory.
func openEngine(t testing.TB, backend string, opts engine.Options) *engineStore {
	t.Helper()
	relay := &RemoveRelay{}
	opts.Create = true
	opts.Backend = backend
	opts.OnRemove = relay.OnRemove
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	db, err := engine.Open(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("engine.Open(%s): %v", backend, err)
	}
	t.Cleanup(func() { db.Close() })
	return &engineStore{Storage: Engine(db), db: db, relay: relay}
}

func engineKind(backend string) storeKind {
	return storeKind{backend, func(t testing.TB) Storage { return openEngine(t, backend, engine.Options{}) }}
}
