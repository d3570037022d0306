package engine

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// TestReplicaCountersFromMeta: on a replica, Size and Stats report the
// size counter and the oid reservation that replication wrote to meta,
// not the engine's own counts from when the site opened (a replica's
// stats and /metrics showed 2 objects while it held 64,104).
func TestReplicaCountersFromMeta(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		first := mustAlloc(t, db, 3)
		mustCommit(t, db, rec(first, first+1), rec(first+1, first+2), rec(first+2))
		before, _ := db.Size()
		db.replica.Store(true) // as a demoted or opening replica is
		defer db.replica.Store(false)
		// Replication writes meta under the engine.
		err := kv.Update(context.Background(), db.store, kv.Sync, func(tx kv.Txn) error {
			if err := putSize(tx, before+500); err != nil {
				return err
			}
			return tx.Put(BucketMeta, []byte(MetaNextOID), int8Bytes(9000))
		})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := db.Size(); err != nil || n != before+500 {
			t.Errorf("replica Size %d, %v; want the replicated %d", n, err, before+500)
		}
		st, err := db.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Objects != before+500 || st.NextOID != 9000 {
			t.Errorf("replica Stats objects %d next_oid %d; want %d and 9000", st.Objects, st.NextOID, before+500)
		}
	})
}

// TestReplicaDropsRemovedFromCache: a replica empties its record cache
// when the replicated meta gc changes (the master's collector or a full
// collection removed objects; removals are not in the change table), so a
// removed record is no longer served from the cache (a QA round: loaded O
// on the replica, K on the other sites).
func TestReplicaDropsRemovedFromCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		first := mustAlloc(t, db, 1)
		mustCommit(t, db, rec(first))
		if _, err := db.Load(first); err != nil { // cached now
			t.Fatal(err)
		}
		db.changes.runMu.Lock()
		defer db.changes.runMu.Unlock()
		if err := db.dropRemoved(); err != nil { // the first look
			t.Fatal(err)
		}
		// Replication deletes the record and counts it in meta gc.
		err := kv.Update(context.Background(), db.store, kv.Sync, func(tx kv.Txn) error {
			if err := tx.Delete(BucketObjects, record.OIDBytes(first)); err != nil {
				return err
			}
			return tx.Put(BucketMeta, []byte(MetaGC), gcProgress{Collections: 1, Freed: 1}.encode())
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Load(first); err != nil {
			t.Fatalf("before the look, the cache still serves the removed record (as replication leaves it): %v", err)
		}
		if err := db.dropRemoved(); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Load(first); !errors.Is(err, ErrNotFound) {
			t.Fatalf("load of a record the master removed, after meta gc changed: %v, want ErrNotFound", err)
		}
	})
}

// TestFullSweepBatchesChangeMetaGC: each sweep batch of a full collection
// that removes objects counts them in meta gc in its own transaction, so
// that a replica, which watches meta gc (dropRemoved), empties its record
// cache while the sweep goes on, not only at the collection's end (a
// record the sweep removed was served from a replica's cache until then).
func TestFullSweepBatchesChangeMetaGC(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		// 600 unreachable objects: two sweep batches (512 a batch).
		const n = 600
		mustAlloc(t, db, n+1)
		recs := [][]byte{rec(0)}
		for k := uint64(1); k <= n; k++ {
			recs = append(recs, rec(k))
		}
		mustCommit(t, db, recs...)
		metaGC := func() []byte {
			v, err := db.store.(kv.Getter).Get(BucketMeta, []byte(MetaGC))
			if err != nil {
				t.Fatal(err)
			}
			return bytes.Clone(v)
		}
		var seen [][]byte
		db.opts.OnFullPhase = func(phase string) {
			if phase == "sweep" || phase == "recount" {
				seen = append(seen, metaGC())
			}
		}
		st, err := db.FullCollect(context.Background())
		db.opts.OnFullPhase = nil
		if err != nil {
			t.Fatal(err)
		}
		if st.Removed != n {
			t.Fatalf("removed %d, want %d", st.Removed, n)
		}
		// seen: before batch 1, before batch 2, after the sweep (recount).
		if len(seen) != 3 {
			t.Fatalf("%d sweep/recount phases seen, want 3", len(seen))
		}
		for i := 1; i < len(seen); i++ {
			if bytes.Equal(seen[i], seen[i-1]) {
				t.Fatalf("meta gc unchanged by sweep batch %d (a replica keeps serving what it removed): %x", i, seen[i])
			}
		}
		if p := decodeGC(metaGC()); p.Freed != n {
			t.Fatalf("meta gc counts %d freed at the end, want %d (each object once)", p.Freed, n)
		}
	})
}
