package engine

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// eventLog records, in order, OnRemove reports and commits that deleted
// objects.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) note(format string, args ...any) {
	l.mu.Lock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// orderStore wraps the engine's store to log every committed deletion of
// an object record.
type orderStore struct {
	kv.Store
	log *eventLog
}

func (s *orderStore) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	tx, err := s.Store.Begin(ctx, writable)
	if err != nil || !writable {
		return tx, err
	}
	return &orderTxn{Txn: tx, log: s.log}, nil
}

// Get keeps the engine's single-record loads working through the wrapper.
func (s *orderStore) Get(bucket string, key []byte) ([]byte, error) {
	if g, ok := s.Store.(kv.Getter); ok {
		return g.Get(bucket, key)
	}
	var v []byte
	err := kv.View(context.Background(), s.Store, func(tx kv.Txn) error {
		var err error
		v, err = tx.Get(bucket, key)
		return err
	})
	return v, err
}

type orderTxn struct {
	kv.Txn
	log     *eventLog
	deleted []uint64
}

func (t *orderTxn) Delete(bucket string, key []byte) error {
	if bucket == BucketObjects && len(key) == 8 {
		t.deleted = append(t.deleted, record.OID(key))
	}
	return t.Txn.Delete(bucket, key)
}

func (t *orderTxn) Commit(d kv.Durability) error {
	err := t.Txn.Commit(d)
	if err == nil {
		for _, oid := range t.deleted {
			t.log.note("delete %d", oid)
		}
	}
	return err
}

// TestRemoveReportedBeforeDelete: the collector and a full collection
// report removed oids (OnRemove, which the server turns into
// invalidations) before the commit that deletes their records, so no
// client can still use an oid whose record is already gone.
func TestRemoveReportedBeforeDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var log eventLog
		opts := testOpts(kind)
		opts.GCGrace = -1
		opts.OnRemove = func(oids []uint64) {
			for _, oid := range oids {
				log.note("report %d", oid)
			}
		}
		db := openTest(t, t.TempDir(), opts)
		db.store = &orderStore{Store: db.store, log: &log} // no background work runs yet
		ctx := context.Background()
		mustAlloc(t, db, 8)
		// 1 and 2 become garbage for the collector; the cycle 3 <-> 4 only
		// for a full collection.
		mustCommit(t, db, rec(0, 1, 3), rec(1), rec(2), rec(3, 4), rec(4, 3))
		mustCommit(t, db, rec(0))
		if n, err := db.CollectGarbageGrace(ctx, 0, 0); err != nil || n != 2 {
			t.Fatalf("collector removed %d (want 1 and 2): %v", n, err)
		}
		if st, err := db.FullCollect(ctx); err != nil || st.Removed != 2 {
			t.Fatalf("full collection removed %+v (want 3 and 4): %v", st, err)
		}
		log.mu.Lock()
		events := slices.Clone(log.events)
		log.mu.Unlock()
		for oid := range uint64(4) {
			oid++
			r := slices.Index(events, fmt.Sprintf("report %d", oid))
			d := slices.Index(events, fmt.Sprintf("delete %d", oid))
			if r < 0 || d < 0 || r > d {
				t.Fatalf("oid %d: reported at %d, deleted at %d (-1: never); want the report first; events %v", oid, r, d, events)
			}
		}
	})
}
