package engine

import (
	"bytes"
	"errors"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

// TestLoadBounded: LoadBounded refuses, unread, a record whose read would
// hold more than the bound when its size is known first (Berkeley DB
// always; LevelDB once a load has read it since it was last written),
// giving the bytes to charge; with that bound it returns the record; a
// change of the record drops what the cache knew of its size.
func TestLoadBounded(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		oid := mustAlloc(t, db, 1)
		big := record.Build(oid, bytes.Repeat([]byte{'b'}, 100<<10))
		mustCommit(t, db, big)
		const limit = 32 << 10
		cost := 1
		if kind == "leveldb" {
			cost = 3 // kv.ReadCoster: LevelDB's copies of a value
			// The first read cannot know the size: it reads the record
			// (and the cache learns its size).
			r, err := db.LoadBounded(oid, limit)
			if err != nil || !bytes.Equal(r, big) {
				t.Fatalf("first LoadBounded on LevelDB: %d bytes, %v", len(r), err)
			}
		}
		_, err := db.LoadBounded(oid, limit)
		var se *RecordSizeError
		if !errors.As(err, &se) || !errors.Is(err, ErrRecordLarge) {
			t.Fatalf("LoadBounded(%d) of a %d-byte record: %v, want a *RecordSizeError", limit, len(big), err)
		}
		if se.OID != oid || se.Size != len(big) || se.Need != cost*len(big) || se.Max != limit {
			t.Fatalf("RecordSizeError %+v: want size %d, need %d", se, len(big), cost*len(big))
		}
		r, err := db.LoadBounded(oid, se.Need)
		if err != nil || !bytes.Equal(r, big) {
			t.Fatalf("LoadBounded(need): %d bytes, %v", len(r), err)
		}
		if r, err := db.Load(oid); err != nil || !bytes.Equal(r, big) {
			t.Fatalf("Load: %d bytes, %v", len(r), err)
		}

		// Smaller now: no stale size refuses it.
		small := record.Build(oid, []byte("small"))
		mustCommit(t, db, small)
		if r, err := db.LoadBounded(oid, limit); err != nil || !bytes.Equal(r, small) {
			t.Fatalf("LoadBounded after the record shrank: %q, %v", r, err)
		}

		// Larger than the bound given for the old size: refused again
		// (Berkeley DB measures it), or read (LevelDB: the size it knew
		// was dropped by the commit), never refused under the old size.
		bigger := record.Build(oid, bytes.Repeat([]byte{'c'}, 200<<10))
		mustCommit(t, db, bigger)
		r, err = db.LoadBounded(oid, se.Need)
		switch kind {
		case "leveldb":
			if err != nil || !bytes.Equal(r, bigger) {
				t.Fatalf("LoadBounded after the record grew (LevelDB): %d bytes, %v", len(r), err)
			}
		default:
			if !errors.As(err, &se) || se.Size != len(bigger) {
				t.Fatalf("LoadBounded after the record grew: %d bytes, %v; want a refusal with size %d", len(r), err, len(bigger))
			}
		}

		if _, err := db.LoadBounded(oid+1000, limit); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LoadBounded of a missing oid: %v", err)
		}
	})
}

// TestLoadCallCovers: a load joins a read in progress only if the read's
// bound is no smaller than its own (or the read has none).
func TestLoadCallCovers(t *testing.T) {
	for _, tc := range []struct {
		call, load int
		want       bool
	}{
		{-1, -1, true}, {-1, 10, true}, {10, -1, false}, {10, 10, true}, {20, 10, true}, {10, 20, false},
	} {
		c := &loadCall{limit: tc.call}
		if got := c.covers(tc.load); got != tc.want {
			t.Errorf("call bound %d covers load bound %d = %v, want %v", tc.call, tc.load, got, tc.want)
		}
	}
}
