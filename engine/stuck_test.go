package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// panickedStore plays a Berkeley DB environment that panics under a full
// disk with a tiny cache (seen with `durusbdb gc --full --cache-size
// 256KiB` while the disk filled): once armed, a read that meets the
// failed writer's locks waits for ever (libdb wakes no waiter on a panic),
// and a write transaction's Put and its Abort fail with DB_RUNRECOVERY.
type panickedStore struct {
	kv.Store
	armed   atomic.Bool
	blocked atomic.Int32  // reads waiting for ever
	release chan struct{} // closed by the test's cleanup
}

func (s *panickedStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !s.armed.Load() {
		return tx, err
	}
	return &panickedTxn{Txn: tx, s: s}, nil
}

type panickedTxn struct {
	kv.Txn
	s *panickedStore
}

var errPanicked = fmt.Errorf("DB_RUNRECOVERY: fatal region error detected; run recovery: %w", kv.ErrNeedRecover)

func (t *panickedTxn) Get(bucket string, key []byte) ([]byte, error) {
	if bucket == BucketMeta && string(key) == MetaLayout {
		// The watchdog's probe: waits on a lock the panic never frees.
		t.s.blocked.Add(1)
		<-t.s.release
		return nil, errPanicked
	}
	return t.Txn.Get(bucket, key)
}

func (t *panickedTxn) Put(bucket string, key, value []byte) error {
	return fmt.Errorf("put: no space left on device: %w", kv.ErrNoSpace)
}

func (t *panickedTxn) Delete(bucket string, key []byte) error {
	return fmt.Errorf("delete: no space left on device: %w", kv.ErrNoSpace)
}

func (t *panickedTxn) Abort() error {
	t.Txn.Abort()
	return errPanicked
}

// TestCloseWhenStorageStuck: when the storage failed in a way that leaves
// background work waiting inside it for ever (a Berkeley DB environment
// that panicked in a write transaction's undo: the offline `gc --full`
// hang), the failure is noticed (the write's error carries the abort's
// DB_RUNRECOVERY) and Close returns within its bound, saying so, instead
// of waiting for the stuck goroutine.
func TestCloseWhenStorageStuck(t *testing.T) {
	defer func(w time.Duration) { stuckWait = w }(stuckWait)
	stuckWait = 200 * time.Millisecond
	forEachBackend(t, func(t *testing.T, kind string) {
		var ps *panickedStore
		var once sync.Once
		unstick := func() { once.Do(func() { close(ps.release) }) }
		db, st := openOver(t, kind, func(st kv.Store) kv.Store {
			ps = &panickedStore{Store: st, release: make(chan struct{})}
			t.Cleanup(unstick)
			return ps
		})
		mustAlloc(t, db, 600)
		recs := [][]byte{rec(0)}
		for o := uint64(1); o < 600; o++ {
			recs = append(recs, rec(o))
		}
		mustCommit(t, db, recs...)
		ps.armed.Store(true)
		testwait.For(t, "the watchdog's probe to block", func() bool { return ps.blocked.Load() > 0 })

		if _, err := db.FullCollect(context.Background()); !errors.Is(err, kv.ErrNeedRecover) {
			t.Fatalf("full collection on the panicked storage: %v, want ErrNeedRecover (the abort's)", err)
		}
		select {
		case <-db.Failed():
		default:
			t.Fatal("the engine did not enter its failed state")
		}
		closed := make(chan error, 1)
		go func() { closed <- db.Close() }()
		select {
		case err := <-closed:
			if err == nil || !strings.Contains(err.Error(), "still waits inside the storage") {
				t.Fatalf("Close: %v, want it to say background work is stuck", err)
			}
		case <-time.After(testwait.Timeout):
			t.Fatal("Close waits for ever for the probe stuck in the failed storage")
		}
		// The process would exit here; the test frees the probe and
		// closes what Close left.
		unstick()
		db.wg.Wait()
		st.Close()
	})
}

// livelockStore plays libdb waiting for cache space it cannot write out
// on a full disk: once armed, a write transaction's Put waits until the
// store is panicked (kv.Panicker), then fails with DB_RUNRECOVERY.
type livelockStore struct {
	kv.Store
	armed    atomic.Bool
	waiting  atomic.Int32
	panicked chan struct{}
	once     sync.Once
}

func (s *livelockStore) Panic() error {
	s.once.Do(func() { close(s.panicked) })
	return nil
}

func (s *livelockStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable || !s.armed.Load() {
		return tx, err
	}
	return &livelockTxn{Txn: tx, s: s}, nil
}

type livelockTxn struct {
	kv.Txn
	s *livelockStore
}

func (t *livelockTxn) Put(bucket string, key, value []byte) error {
	t.s.waiting.Add(1)
	<-t.s.panicked
	return errPanicked
}

// TestStuckWriteOnFullDiskBroken: a write that waits inside the storage
// (libdb's __memp_alloc on a full disk, with a small cache: an offline
// `gc --full` hung there for ever) is broken by the watchdog once it has
// waited stuckWrite while the file system is full: the storage is put in
// its failed state, the write returns, the engine fails and Close
// returns. With room on the file system the watchdog leaves a long write
// alone.
func TestStuckWriteOnFullDiskBroken(t *testing.T) {
	defer func(w time.Duration) { stuckWrite = w }(stuckWrite)
	stuckWrite = 300 * time.Millisecond
	forEachBackend(t, func(t *testing.T, kind string) {
		ls := &livelockStore{panicked: make(chan struct{})}
		db, _ := openOver(t, kind, func(st kv.Store) kv.Store { ls.Store = st; return ls })
		t.Cleanup(func() {
			ls.Panic() // frees a write the test left stuck, then Close
			db.Close()
		})
		var free atomic.Int64
		free.Store(1 << 30)
		stubFree(db, free.Load)
		mustAlloc(t, db, 4)
		mustCommit(t, db, rec(0))
		ls.armed.Store(true)
		p, err := db.Stage(context.Background(), [][]byte{rec(1)})
		if err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- p.Wait(context.Background()) }()
		testwait.For(t, "the write to wait inside the storage", func() bool { return ls.waiting.Load() > 0 })
		// Room on the file system: a slow write is not a stuck one.
		time.Sleep(3 * probeEvery)
		select {
		case <-ls.panicked:
			t.Fatal("the watchdog broke a long write while the file system had room")
		default:
		}
		free.Store(64 << 10) // the disk fills up
		select {
		case err := <-waited:
			if !errors.Is(err, kv.ErrNeedRecover) {
				t.Fatalf("the stuck commit: %v, want ErrNeedRecover", err)
			}
		case <-time.After(testwait.Timeout):
			t.Fatal("a write stuck inside the storage on a full disk was never broken")
		}
		select {
		case <-db.Failed():
		case <-time.After(testwait.Timeout):
			t.Fatal("the engine did not fail after its stuck write was broken")
		}
	})
}

// TestBreakerTimesWritesNotScans: the stuck-write breaker times the
// holder of writeMu from the moment it took it, except a holder that keeps
// it across whole scans (Check, Import: LockUnwatched), which it times
// only inside their write transactions (updateWatched). A check of a big
// database on a full disk is not taken for a stuck write.
func TestBreakerTimesWritesNotScans(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		ls := &livelockStore{panicked: make(chan struct{})}
		db, _ := openOver(t, kind, func(st kv.Store) kv.Store { ls.Store = st; return ls })
		t.Cleanup(func() { db.Close() })
		stubFree(db, func() int64 { return 0 }) // full
		later := time.Now().Add(time.Hour)
		panicked := func() bool {
			select {
			case <-ls.panicked:
				return true
			default:
				return false
			}
		}

		var scanned, inside bool
		var err error
		func() {
			db.writeMu.LockUnwatched()
			defer db.writeMu.Unlock()
			db.breakStuckWrite(later)
			scanned = panicked()
			err = db.updateWatched(context.Background(), kv.Sync, func(kv.Txn) error {
				db.breakStuckWrite(later)
				inside = panicked()
				return nil
			})
		}()
		if scanned {
			t.Fatal("the breaker took a long scan under writeMu (LockUnwatched) for a stuck write")
		}
		if err != nil {
			t.Fatal(err)
		}
		if !inside {
			t.Fatal("the breaker did not time a write transaction of an unwatched holder")
		}
	})
}

// openOver creates a database of kind over its backend's store wrapped by
// wrap (the tests' failing stores), and returns it with the store
// unwrapped (which a test closes itself when the DB's Close leaves it).
func openOver(t *testing.T, kind string, wrap func(kv.Store) kv.Store) (*DB, kv.Store) {
	t.Helper()
	dir := t.TempDir()
	st, _, err := backend.Open(kv.Options{Dir: dir, Create: true, Buckets: Buckets(false, 0), CacheSize: 8 << 20}, kind)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOpts(kind)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := openWith(context.Background(), dir, wrap(st), opts, true)
	if err != nil {
		t.Fatal(err)
	}
	return db, st
}

// stubFree makes db's file system report free() bytes free to the space
// guard and the stuck-write breaker.
func stubFree(db *DB, free func() int64) {
	db.space.recent.mu.Lock()
	defer db.space.recent.mu.Unlock()
	db.space.recent.stat = func(st *syscall.Statfs_t) error {
		st.Bsize, st.Bavail, st.Files, st.Ffree = 4096, uint64(free()/4096), 1<<20, 1<<20
		return nil
	}
}
