package engine

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

// TestRecCacheEpoch: a fill whose read began before an invalidation of the
// shard is dropped; the budget is kept by eviction; oversized records are
// not cached; purge empties everything.
func TestRecCacheEpoch(t *testing.T) {
	c := newRecCache(16 * 1024)
	_, e, ok := c.get(5)
	if ok {
		t.Fatal("hit in an empty cache")
	}
	c.invalidate(5) // a commit of oid 5 lands between the read and the fill
	c.fill(5, []byte("old"), e)
	if _, _, ok := c.get(5); ok {
		t.Fatal("a record read before the invalidation was cached")
	}
	_, e, _ = c.get(5)
	c.fill(5, []byte("new"), e)
	if v, _, ok := c.get(5); !ok || string(v) != "new" {
		t.Fatalf("get after fill: %q %v", v, ok)
	}
	for oid := uint64(100); oid < 2000; oid++ {
		_, e, _ := c.get(oid)
		c.fill(oid, make([]byte, 40), e)
	}
	for i := range c.shards {
		if s := &c.shards[i]; s.bytes > s.budget {
			t.Fatalf("shard %d holds %d bytes over its budget %d", i, s.bytes, s.budget)
		}
	}
	big := make([]byte, 1024) // more than an eighth of a 1 KiB shard
	_, e, _ = c.get(7)
	c.fill(7, big, e)
	if _, _, ok := c.get(7); ok {
		t.Fatal("a record larger than an eighth of its shard was cached")
	}
	c.purge()
	if b, n := c.size(); b != 0 || n != 0 {
		t.Fatalf("after purge: %d bytes, %d records", b, n)
	}
	var off recCache // disabled
	_, e, _ = off.get(1)
	off.fill(1, []byte("x"), e)
	if _, _, ok := off.get(1); ok {
		t.Fatal("a disabled cache cached")
	}
}

// TestRecCacheWriters: every writer of the objects bucket leaves no stale
// copy behind: a cached record replaced by a commit, removed by the
// collector, removed by a full collection, or replaced by a forced import.
func TestRecCacheWriters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		opts := testOpts(kind)
		opts.GCGrace = -1
		db := openTest(t, t.TempDir(), opts)
		ctx := context.Background()
		mustAlloc(t, db, 16)
		mustCommit(t, db, rec(0, 1, 2), rec(1), rec(2), rec(3))
		load := func(oid uint64) []byte {
			t.Helper()
			v, err := db.Load(oid)
			if err != nil {
				t.Fatalf("load %d: %v", oid, err)
			}
			return v
		}
		for oid := range uint64(4) {
			load(oid) // cache them
			load(oid)
		}
		if db.cache.hits.Load() < 4 {
			t.Fatalf("%d hits after loading 4 oids twice", db.cache.hits.Load())
		}
		// Commit: replaced.
		mustCommit(t, db, record.Build(1, []byte("v2")))
		if got := load(1); !bytes.Equal(got, record.Build(1, []byte("v2"))) {
			t.Fatalf("after commit: %q", got)
		}
		// Collector: 3 has no referrer; 2 loses its last one.
		mustCommit(t, db, rec(0, 1))
		if _, err := db.CollectGarbage(ctx, 0); err != nil {
			t.Fatal(err)
		}
		for _, oid := range []uint64{2, 3} {
			if _, err := db.Load(oid); !errors.Is(err, ErrNotFound) {
				t.Fatalf("oid %d after the collector: %v, want not found", oid, err)
			}
		}
		// Full collection: a cycle 4 <-> 5 unreachable from the root.
		mustCommit(t, db, rec(4, 5), rec(5, 4), rec(0, 1, 4))
		load(4)
		load(5)
		mustCommit(t, db, rec(0, 1))
		if _, err := db.FullCollect(ctx); err != nil {
			t.Fatal(err)
		}
		for _, oid := range []uint64{4, 5} {
			if _, err := db.Load(oid); !errors.Is(err, ErrNotFound) {
				t.Fatalf("oid %d after the full collection: %v, want not found", oid, err)
			}
		}
		// Forced import: new contents.
		load(1)
		if _, err := db.Import(ctx, source(rec(0, 1), record.Build(1, []byte("imported"))), ImportOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if got := load(1); !bytes.Equal(got, record.Build(1, []byte("imported"))) {
			t.Fatalf("after import: %q", got)
		}
		verifyInvariants(t, db)
	})
}

// checkRecBytes fails unless every shard's byte count is exactly what its
// map holds and within its budget.
func checkRecBytes(t *testing.T, c *recCache) {
	t.Helper()
	for i := range c.shards {
		s := &c.shards[i]
		var want int64
		for _, v := range s.m {
			want += int64(len(v)) + recOverhead
		}
		if s.bytes != want || s.bytes > s.budget {
			t.Fatalf("shard %d counts %d bytes, holds %d (budget %d)", i, s.bytes, want, s.budget)
		}
	}
}

// TestRecCacheRefillAccounting: refilling a cached oid with a larger record
// in a full shard keeps the byte count exact, also when the eviction would
// pick the oid being replaced (map order is random, so many rounds make
// that case certain to occur).
func TestRecCacheRefillAccounting(t *testing.T) {
	c := newRecCache(recShards * 2048) // 2 KiB shards: records up to 256 bytes
	s := c.shard(1)
	var oids []uint64 // oids of shard 1's shard
	for oid := uint64(1); len(oids) < 40; oid++ {
		if c.shard(oid) == s {
			oids = append(oids, oid)
		}
	}
	for round := range 2000 {
		oid := oids[round%len(oids)]
		_, e, _ := c.get(oid)
		c.fill(oid, make([]byte, 32+round%150), e)
		checkRecBytes(t, c)
		if v, _, ok := c.get(oid); !ok || len(v) != 32+round%150 {
			t.Fatalf("round %d: oid %d not cached after its fill", round, oid)
		}
	}
}

// A record of sizeHintMin bytes or more that the cache evicts keeps its
// size known (a miss returns it), so that a bounded load of it is charged
// before it is read on stores that cannot measure a value first
// (LevelDB), as for records too large to cache.
func TestRecCacheKeepsSizeOfEvicted(t *testing.T) {
	rec := make([]byte, sizeHintMin+1)
	size := int64(len(rec)) + recOverhead
	c := newRecCache(recShards * 8 * size) // each shard holds 8 such records
	var oids []uint64
	for i := uint64(1); i <= 20; i++ {
		oid := i * recShards // all in shard 0
		oids = append(oids, oid)
		_, epoch, _ := c.get(oid)
		c.fill(oid, rec, epoch)
	}
	evicted := 0
	for _, oid := range oids {
		got, _, n, hit := c.lookup(oid)
		switch {
		case hit && len(got) != len(rec):
			t.Fatalf("oid %d: cached %d bytes, want %d", oid, len(got), len(rec))
		case !hit:
			evicted++
			if n != len(rec) {
				t.Fatalf("oid %d evicted: size %d known, want %d", oid, n, len(rec))
			}
		}
	}
	if evicted != 12 {
		t.Fatalf("%d of 20 evicted, want 12", evicted)
	}
	c.invalidate(oids[0])
	if _, _, n, hit := c.lookup(oids[0]); hit || n != 0 {
		t.Fatalf("after invalidate: hit %v, size %d; want neither", hit, n)
	}
}
