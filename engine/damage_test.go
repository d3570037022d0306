package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

// A stored record that fails R1–R4 (a damaged file of a directory without
// page checksums) is refused on load with an error naming the oid, and
// never sent to a client as if it were an object; the database goes on
// serving the others.
func TestLoadDamagedRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		ctx := context.Background()
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		mustAlloc(t, db, 3)
		mustCommit(t, db, rec(0, 1, 2), rec(1), rec(2))
		bad := rec(1)
		bad[8] ^= 0x5a // the data length now runs past the record
		err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
			if err := tx.Put(BucketObjects, record.OIDBytes(1), bad); err != nil {
				return err
			}
			return tx.Put(BucketObjects, record.OIDBytes(2), rec(7)) // names another oid
		})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		db = openTest(t, dir, testOpts(kind))
		for _, oid := range []uint64{1, 2} {
			got, err := db.Load(oid)
			if err == nil {
				t.Fatalf("load of damaged oid %d returned %q, want an error", oid, got)
			}
			if !errors.Is(err, kv.ErrCorrupt) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("load oid %d: %v: want kv.ErrCorrupt and ErrMalformed", oid, err)
			}
			if !strings.Contains(err.Error(), "oid "+string(rune('0'+oid))) {
				t.Fatalf("load oid %d: %v does not name the oid", oid, err)
			}
		}
		if _, err := db.Load(0); err != nil {
			t.Fatalf("load of an undamaged record: %v", err)
		}
		select {
		case <-db.Failed():
			t.Fatalf("a damaged record put the engine in its fatal state: %v", db.FailErr())
		default:
		}
	})
}
