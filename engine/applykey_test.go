package engine

import (
	"context"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// keyTxn notes the backing array of every key the engine hands the store.
type keyTxn struct {
	kv.Txn
	arrays map[*byte]int
}

func (t *keyTxn) note(key []byte) {
	if len(key) > 0 {
		t.arrays[&key[0]]++
	}
}

func (t *keyTxn) Get(bucket string, key []byte) ([]byte, error) {
	t.note(key)
	return t.Txn.Get(bucket, key)
}

func (t *keyTxn) Put(bucket string, key, value []byte) error {
	t.note(key)
	return t.Txn.Put(bucket, key, value)
}

func (t *keyTxn) Delete(bucket string, key []byte) error {
	t.note(key)
	return t.Txn.Delete(bucket, key)
}

// TestApplyCommitReusesKey: applyCommit builds every oid key in one buffer
// (the old record, the record, the counts and the garbage entries of its
// oids and references), not one allocation per key, and what it writes
// under the reused key is still right.
func TestApplyCommitReusesKey(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		oid := mustAlloc(t, db, 3) + 1 // not the root, which is never garbage
		child := oid + 1
		tx, err := db.store.Begin(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Abort()
		kt := &keyTxn{Txn: tx, arrays: map[*byte]int{}}
		recs := []commitRec{
			{oid: oid, rec: rec(oid, child), refs: []uint64{child}},
			{oid: child, rec: rec(child)},
		}
		stored := map[uint64]struct{}{oid: {}, child: {}}
		added, err := db.applyCommit(kt, recs, stored, nil)
		if err != nil {
			t.Fatal(err)
		}
		if added != 2 {
			t.Errorf("added %d, want 2", added)
		}
		calls := 0
		for _, n := range kt.arrays {
			calls += n
		}
		if len(kt.arrays) != 1 || calls < 6 {
			t.Errorf("%d store calls used %d key arrays, want one", calls, len(kt.arrays))
		}
		if n, err := db.getCount(tx, child); err != nil || n != 1 {
			t.Errorf("count of %d: %d, %v; want 1", child, n, err)
		}
		if n, err := db.getCount(tx, oid); err != nil || n != 0 {
			t.Errorf("count of %d: %d, %v; want 0", oid, n, err)
		}
		if _, err := tx.Get(BucketGarbage, record.OIDBytes(oid)); err != nil {
			t.Errorf("unreferenced %d not queued as garbage: %v", oid, err)
		}
		if _, err := tx.Get(BucketGarbage, record.OIDBytes(child)); err == nil {
			t.Errorf("referenced %d queued as garbage", child)
		}
		for _, o := range []uint64{oid, child} {
			if v, err := tx.Get(BucketObjects, record.OIDBytes(o)); err != nil || string(v) != string(rec(o, refsOf(o, child)...)) {
				t.Errorf("record %d: %q, %v", o, v, err)
			}
		}
	})
}

// refsOf is the refs TestApplyCommitReusesKey gives oid.
func refsOf(oid, child uint64) []uint64 {
	if oid == child {
		return nil
	}
	return []uint64{child}
}
