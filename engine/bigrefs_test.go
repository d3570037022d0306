package engine

import (
	"context"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

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
		first := mustAlloc(t, db, n+1)
		var recs [][]byte
		refs := make([]uint64, 0, n)
		for i := uint64(1); i <= n; i++ {
			recs = append(recs, rec(first+i))
			refs = append(refs, first+i)
		}
		mustCommit(t, db, recs...)
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
