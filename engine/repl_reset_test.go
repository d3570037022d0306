package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// releaseAll (a reset) wakes the loads waiting on forwarded commits'
// holds; a release function of a dropped hold then leaves a later hold of
// the same oid alone.
func TestReleaseAllForwardHolds(t *testing.T) {
	db := &DB{}
	db.ctx, db.cancel = context.WithCancel(context.Background())
	defer db.cancel()
	old := db.HoldForwarded([]uint64{7, 8})
	loaded := make(chan struct{})
	go func() { db.waitForwarded(7); close(loaded) }()
	db.fwd.releaseAll()
	select {
	case <-loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("a load waiting on a hold was not woken by releaseAll")
	}
	if n := db.ForwardsHeld(); n != 0 {
		t.Fatalf("%d oids held after releaseAll", n)
	}
	later := db.HoldForwarded([]uint64{7})
	old()
	if n := db.ForwardsHeld(); n != 1 {
		t.Fatalf("the release of a dropped hold released a later one: %d oids held", n)
	}
	later()
	if n := db.ForwardsHeld(); n != 0 {
		t.Fatalf("%d oids held after the last release", n)
	}
}

// deadStore is a replica's store whose handles a test kills: while dead,
// reads fail with kv.ErrHandleDead until Reopen. Its role is a synced
// replica of another site, or a removed site.
type deadStore struct {
	kv.Store
	dead    atomic.Bool
	removed atomic.Bool
	reopens atomic.Int32
	// stillDead counts the next reopens that leave the handles dead: a
	// rollback that came right after the reopen killed the new ones too.
	stillDead atomic.Int32
	// dones counts calls of OnReset's done; reopensAtDone is reopens at the last.
	dones, reopensAtDone atomic.Int32
}

func (s *deadStore) ReplRole() kv.RoleInfo {
	return kv.RoleInfo{Role: kv.RoleReplica, MasterReplAddr: "127.0.0.1:2", Removed: s.removed.Load()}
}

func (s *deadStore) ReplChanged() <-chan struct{} { return nil }

func (s *deadStore) Reopen(context.Context) error {
	s.reopens.Add(1)
	if s.stillDead.Add(-1) >= 0 {
		return nil
	}
	s.stillDead.Store(0)
	s.dead.Store(false)
	return nil
}

func (s *deadStore) Get(bucket string, key []byte) ([]byte, error) {
	if s.dead.Load() {
		return nil, fmt.Errorf("get: %w", kv.ErrHandleDead)
	}
	return s.Store.(kv.Getter).Get(bucket, key)
}

func (s *deadStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	if s.dead.Load() {
		return nil, fmt.Errorf("begin: %w", kv.ErrHandleDead)
	}
	return s.Store.Begin(ctx, writable)
}

// openDeadStore opens a replica DB over a deadStore on a new LevelDB
// database; OnReset sends to the returned channel, and its done function
// counts in ds.dones and notes in ds.reopensAtDone how many reopens had
// happened by then.
func openDeadStore(t *testing.T) (*DB, *deadStore, <-chan error) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db0, err := Open(ctx, dir, Options{Create: true, Backend: backend.LevelDB})
	if err != nil {
		t.Fatal(err)
	}
	if err := db0.Close(); err != nil {
		t.Fatal(err)
	}
	st, _, err := backend.Open(kv.Options{Dir: dir, Buckets: append(Buckets(false, 0), changesSpec())}, backend.LevelDB)
	if err != nil {
		t.Fatal(err)
	}
	ds := &deadStore{Store: st}
	resets := make(chan error, 8)
	opts := Options{
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Replication: &kv.Replication{Listen: "127.0.0.1:1"},
		OnReset: func(why error) func() {
			resets <- why
			return func() {
				ds.reopensAtDone.Store(ds.reopens.Load())
				ds.dones.Add(1)
			}
		},
	}
	db, err := openWith(ctx, dir, ds, opts, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if !db.IsReplica() {
		t.Fatalf("opened as %s, want replica", db.Role().Role)
	}
	return db, ds, resets
}

// A replica whose load meets dead handles (a rollback) is reset in place:
// its owner is told to close its clients, the handles are reopened, and
// the DB serves again without failing.
func TestResetReopensDeadHandles(t *testing.T) {
	db, ds, resets := openDeadStore(t)
	loadDeadAndReset(t, db, ds, resets, 1)
	if !db.IsReplica() {
		t.Fatalf("after the reset: %s, want replica", db.Role().Role)
	}
	if n := db.Role().Resets; n != 1 {
		t.Fatalf("Role().Resets = %d, want 1 (the metric durusbdb_repl_resets_total)", n)
	}
}

// Handles that die again after the reset reopened them (a rollback that
// libdb ran once the reset had seen a stale synced role: a demoted
// master's start-up flag from before its demotion) are reopened again by
// the same reset, which does not wait for its timeout on dead handles.
func TestResetReopensHandlesDeadAgain(t *testing.T) {
	db, ds, resets := openDeadStore(t)
	ds.stillDead.Store(1)
	loadDeadAndReset(t, db, ds, resets, 2)
}

// loadDeadAndReset kills ds's handles, loads from db and checks that the
// load fails with kv.ErrHandleDead, that one reset follows with reopens
// reopens, OnReset's done called once after the last, and that db then
// serves without having failed.
func loadDeadAndReset(t *testing.T, db *DB, ds *deadStore, resets <-chan error, reopens int32) {
	t.Helper()
	ds.dead.Store(true)
	if _, err := db.Load(5); !errors.Is(err, kv.ErrHandleDead) {
		t.Fatalf("load on dead handles: %v", err)
	}
	select {
	case why := <-resets:
		if !errors.Is(why, kv.ErrHandleDead) {
			t.Errorf("OnReset told %v", why)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no reset after a load met dead handles")
	}
	testwait.Within(t, 30*time.Second, "the reset done", func() bool { return db.Resets() == 1 })
	if n := ds.reopens.Load(); n != reopens {
		t.Fatalf("%d reopens, want %d", n, reopens)
	}
	// The owner's hold on new clients ends once, after the last reopen.
	testwait.Within(t, 30*time.Second, "OnReset's done", func() bool { return ds.dones.Load() > 0 })
	if n, at := ds.dones.Load(), ds.reopensAtDone.Load(); n != 1 || at != reopens {
		t.Fatalf("OnReset's done called %d times, after %d reopens; want once, after %d", n, at, reopens)
	}
	if _, err := db.Load(5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("load after the reset: %v, want ErrNotFound", err)
	}
	if err := db.FailErr(); err != nil {
		t.Fatalf("the DB failed: %v", err)
	}
}

// A site removed from its group fails the DB with ErrSiteRemoved.
func TestSiteRemovedFails(t *testing.T) {
	db, ds, _ := openDeadStore(t)
	ds.removed.Store(true)
	select {
	case <-db.Failed():
	case <-time.After(30 * time.Second):
		t.Fatal("a removed site still serves")
	}
	if err := db.FailErr(); !errors.Is(err, ErrSiteRemoved) {
		t.Fatalf("fail cause %v, want ErrSiteRemoved", err)
	}
}
