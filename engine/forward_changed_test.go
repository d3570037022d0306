package engine

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// changeTable is an in-memory kv.Txn and kv.Getter over the change table
// only, enough for logChanges and ChangedSince.
type changeTable struct {
	kv.Txn
	m map[string][]byte
}

func (t *changeTable) Put(bucket string, key, value []byte) error {
	t.m[bucket+string(key)] = append([]byte(nil), value...)
	return nil
}

func (t *changeTable) Delete(bucket string, key []byte) error {
	delete(t.m, bucket+string(key))
	return nil
}

func (t *changeTable) Get(bucket string, key []byte) ([]byte, error) {
	if v, ok := t.m[bucket+string(key)]; ok {
		return v, nil
	}
	return nil, kv.ErrNotFound
}

// changeStore is a kv.Store whose only working method is Get.
type changeStore struct {
	kv.Store
	t *changeTable
}

func (s changeStore) Get(bucket string, key []byte) ([]byte, error) { return s.t.Get(bucket, key) }

// TestChangedSinceRecent: ChangedSince answers from the entries kept in
// memory exactly as from the change table, including past the memory's
// reach (older entries are read from the table) and once the memory is
// cleared (a new mastership term).
func TestChangedSinceRecent(t *testing.T) {
	db := &DB{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	db.opts.Replication = &kv.Replication{}
	tbl := &changeTable{m: map[string][]byte{}}
	db.store = changeStore{t: tbl}
	rng := rand.New(rand.NewPCG(1, 2))
	const entries = recentChanges + recentChanges/2
	db.changes.next = 1
	for range entries {
		var q []*Pending
		for range 1 + rng.IntN(3) {
			q = append(q, &Pending{recs: []commitRec{{oid: rng.Uint64N(5000)}, {oid: rng.Uint64N(5000)}}})
		}
		if err := db.logChanges(tbl, q); err != nil {
			t.Fatal(err)
		}
		db.changes.next++
	}
	// A run whose transaction failed: its entry was written (then
	// rolled back), next did not move.
	if err := db.logChanges(tbl, []*Pending{{recs: []commitRec{{oid: 4999}}}}); err != nil {
		t.Fatal(err)
	}
	delete(tbl.m, BucketChanges+string(int8Bytes(db.changes.next)))
	type query struct {
		pos  uint64
		oids []uint64
	}
	var qs []query
	for range 3000 {
		qs = append(qs, query{1 + rng.Uint64N(entries+2), []uint64{rng.Uint64N(5000), rng.Uint64N(5000)}})
	}
	qs = append(qs, query{db.changes.next, []uint64{4999}})
	answer := func() []bool {
		var out []bool
		for _, q := range qs {
			changed, err := db.ChangedSince(q.pos, q.oids)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, changed)
		}
		return out
	}
	withMemory := answer()
	db.changes.recent = [recentChanges]recentChange{}
	fromTable := answer()
	hits := 0
	for i, q := range qs {
		if withMemory[i] != fromTable[i] {
			t.Fatalf("ChangedSince(%d, %v): %v from memory, %v from the table", q.pos, q.oids, withMemory[i], fromTable[i])
		}
		if withMemory[i] {
			hits++
		}
	}
	if hits == 0 || hits == len(qs) {
		t.Fatalf("%d of %d queries changed: the test asks nothing", hits, len(qs))
	}
	if withMemory[len(qs)-1] {
		t.Fatal("the entry of a failed run counted as a change")
	}
}

// TestChangedSinceDuringRun: ChangedSince, which a master's forwarded
// commit calls under the server's commit token, does not wait for an
// apply run (writeMu, held through the quorum's acknowledgement): waiting
// held the token for the length of a run, so the master applied forwarded
// commits one run each (1.09 commits a run, 4 ms a forward, measured).
func TestChangedSinceDuringRun(t *testing.T) {
	db := &DB{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	db.opts.Replication = &kv.Replication{}
	tbl := &changeTable{m: map[string][]byte{}}
	db.store = changeStore{t: tbl}
	db.changes.next = 1
	if err := db.logChanges(tbl, []*Pending{{recs: []commitRec{{oid: 7}}}}); err != nil {
		t.Fatal(err)
	}
	db.changes.next++
	db.writeMu.Lock() // an apply run in progress
	defer db.writeMu.Unlock()
	type answer struct {
		changed bool
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		changed, err := db.ChangedSince(1, []uint64{7})
		done <- answer{changed, err}
	}()
	select {
	case a := <-done:
		if a.err != nil || !a.changed {
			t.Fatalf("ChangedSince(1, [7]) = %v, %v; want true, nil", a.changed, a.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ChangedSince waited for the apply run (writeMu)")
	}
}
