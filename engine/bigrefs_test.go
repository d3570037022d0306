package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// commitLeaves commits n new records without references (after the root's
// oid) in one commit and returns their oids.
func commitLeaves(t *testing.T, db *DB, n int) []uint64 {
	t.Helper()
	first := mustAlloc(t, db, n+1)
	var recs [][]byte
	refs := make([]uint64, 0, n)
	for i := uint64(1); i <= uint64(n); i++ {
		recs = append(recs, rec(first+i))
		refs = append(refs, first+i)
	}
	mustCommit(t, db, recs...)
	return refs
}

// countGets counts the reads of the objects bucket in writable
// transactions (the apply runs).
type countGets struct {
	kv.Store
	n int
}

func (s *countGets) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable {
		return tx, err
	}
	return &countGetsTxn{Txn: tx, s: s}, nil
}

type countGetsTxn struct {
	kv.Txn
	s *countGets
}

func (t *countGetsTxn) Get(bucket string, key []byte) ([]byte, error) {
	if bucket == BucketObjects {
		t.s.n++
	}
	return t.Txn.Get(bucket, key)
}

// The apply does not read again the references Stage found stored (they
// are pinned until the apply): inside the apply's transaction each read
// pulls a page of objects into the cache, and a record with 150k
// references to 1 KB objects ran Berkeley DB's cache out of memory (see
// TestBigReferenceCommitSmallCache).
func TestApplyTrustsStagedLookups(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		const n = 500
		refs := commitLeaves(t, db, n)
		cg := &countGets{Store: db.store}
		db.store = cg // no background work runs in tests (manual GC and checkpoints)
		mustCommit(t, db, rec(0, refs...))
		if cg.n > 1 { // the root's own old version
			t.Fatalf("the apply read the objects bucket %d times for a record with %d references Stage had found", cg.n, n)
		}
	})
}

// A commit of a record with 150k references to 1 KB objects succeeds with
// a 16 MiB cache (Berkeley DB: it ran the cache out of memory in the
// apply, and the server stopped, or hung inside libdb, before the apply
// trusted Stage's lookups).
func TestBigReferenceCommitSmallCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		opts := testOpts(kind)
		opts.CacheSize = 16 << 20
		db := openTest(t, t.TempDir(), opts)
		const n = 150000
		first := mustAlloc(t, db, n)
		data := make([]byte, 1000)
		refs := make([]uint64, 0, n)
		for start := uint64(0); start < n; start += 5000 {
			var recs [][]byte
			for i := start; i < min(start+5000, n); i++ {
				recs = append(recs, record.Build(first+i, data))
				refs = append(refs, first+i)
			}
			mustCommit(t, db, recs...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p, err := db.Stage(ctx, [][]byte{record.Build(0, []byte("root"), refs...)})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatalf("commit of a record with %d references, 16 MiB cache: %v", n, err)
		}
		if rc, ok := metaGet(t, db, MetaSize); !ok || len(rc) != 8 {
			t.Fatalf("size after the commit: %x %v", rc, ok)
		}
	})
}

// boundedStore is a store whose transactions hold at most limit changed
// reference counts (kv.TxnBounded), as Berkeley DB's cache bounds them.
type boundedStore struct {
	kv.Store
	limit int
}

func (s boundedStore) MaxTxnChanges() int { return s.limit }

// A commit that changes more reference counts than one transaction of the
// store holds is refused with ErrTooLarge, naming the cache size that
// would take it and storing nothing, and the engine goes on: at Stage when
// its references alone are too many (before anybody is told what it
// stores), in the apply when the references it loses make it so.
func TestCommitTooLargeRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		const n = 150
		refs := commitLeaves(t, db, n)
		first := refs[0] - 1
		mustCommit(t, db, rec(0, refs...)) // unbounded: 150 changes
		db.store = boundedStore{Store: db.store, limit: 100}

		_, err := db.Stage(context.Background(), [][]byte{rec(0, append(refs[:0:0], refs...)...), rec(first+1, refs[1:]...)})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "--cache-size") {
			t.Fatalf("a commit of 299 references with room for 100: %v, want ErrTooLarge naming --cache-size", err)
		}
		// Shrinking the root to no references loses 150: refused in the
		// apply, the root unchanged.
		p, err := db.Stage(context.Background(), [][]byte{rec(0)})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(context.Background()); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("a commit losing 150 references with room for 100: %v, want ErrTooLarge", err)
		}
		if got, err := db.Load(0); err != nil || !bytes.Equal(got, rec(0, refs...)) {
			t.Fatalf("the refused commit changed the root: %v", err)
		}
		mustCommit(t, db, rec(0, refs[:60]...)) // loses 90: fits
		select {
		case <-db.Failed():
			t.Fatalf("a refused commit failed the engine: %v", db.FailErr())
		default:
		}
		verifyInvariants(t, db)
	})
}
