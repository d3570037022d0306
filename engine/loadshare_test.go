package engine

import (
	"bytes"
	"sync"
	"testing"
	"unsafe"

	"github.com/durusbdb/durusbdb/durus/record"
)

// TestLoadSharesLargeRecords: concurrent loads of one large record, and a
// load while an earlier copy is still held, return one copy; a commit of
// the oid ends the sharing (the next load returns the new record); with the
// record cache disabled nothing is shared.
func TestLoadSharesLargeRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		db := newTestDB(t, kind)
		mustAlloc(t, db, 4)
		big := record.Build(1, bytes.Repeat([]byte{'x'}, 4<<20))
		mustCommit(t, db, record.Build(0, []byte("root"), 1), big)

		const n = 16
		got := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				v, err := db.Load(1)
				if err != nil {
					t.Error(err)
				}
				got[i] = v
			})
		}
		wg.Wait()
		copies := map[*byte]bool{}
		for _, v := range got {
			if !bytes.Equal(v, big) {
				t.Fatalf("load returned %d bytes, want the record", len(v))
			}
			copies[unsafe.SliceData(v)] = true
		}
		// Loads that did not overlap may each have read the store once,
		// but a load while a copy is held shares it.
		held := got[0]
		later, err := db.Load(1)
		if err != nil {
			t.Fatal(err)
		}
		if unsafe.SliceData(later) != unsafe.SliceData(held) {
			t.Fatalf("a load while a copy is held made another copy")
		}
		t.Logf("%d concurrent loads: %d copies", n, len(copies))
		if len(copies) > n/2 {
			t.Errorf("%d concurrent loads made %d copies", n, len(copies))
		}

		big2 := record.Build(1, bytes.Repeat([]byte{'y'}, 4<<20))
		mustCommit(t, db, big2)
		after, err := db.Load(1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, big2) {
			t.Fatalf("after a commit the shared old copy was returned")
		}
		if !bytes.Equal(held, big) {
			t.Fatalf("a held copy changed")
		}
	})
}

// TestLoadShareOffWithoutRecordCache: with the record cache disabled each
// load reads the store (no epoch to keep a shared copy coherent).
func TestLoadShareOffWithoutRecordCache(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		opts := testOpts(kind)
		opts.RecordCache = -1
		db := openTest(t, t.TempDir(), opts)
		mustAlloc(t, db, 4)
		big := record.Build(1, bytes.Repeat([]byte{'x'}, 2<<20))
		mustCommit(t, db, record.Build(0, []byte("root"), 1), big)
		a, err := db.Load(1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := db.Load(1)
		if err != nil {
			t.Fatal(err)
		}
		if unsafe.SliceData(a) == unsafe.SliceData(b) || !bytes.Equal(a, b) {
			t.Fatalf("loads without a record cache shared a copy")
		}
	})
}
