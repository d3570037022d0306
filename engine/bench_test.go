package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/kv"
)

func benchBackends(b *testing.B, fn func(b *testing.B, kind string)) {
	for _, k := range backend.Compiled() {
		b.Run(k, func(b *testing.B) { fn(b, k) })
	}
}

// smallRec is a ~100-byte record.
func smallRec(oid uint64, refs ...uint64) []byte {
	data := make([]byte, 90)
	for i := range data {
		data[i] = byte(oid) + byte(i)
	}
	return record.Build(oid, data, refs...)
}

func BenchmarkCommit(b *testing.B) {
	benchBackends(b, func(b *testing.B, kind string) {
		for _, n := range []int{1, 100, 10000} {
			b.Run(fmt.Sprint(n), func(b *testing.B) {
				db := openTest(b, b.TempDir(), testOpts(kind))
				ctx := context.Background()
				mustAlloc(b, db, 1)
				mustCommit(b, db, smallRec(0))
				recs := make([][]byte, n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					first, err := db.AllocOIDs(n)
					if err != nil {
						b.Fatal(err)
					}
					for j := range recs {
						recs[j] = smallRec(first + uint64(j))
					}
					p, err := db.Commit(ctx, recs)
					if err != nil {
						b.Fatal(err)
					}
					if err := p.Wait(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	})
}

func BenchmarkLoadWarm(b *testing.B) {
	benchBackends(b, func(b *testing.B, kind string) {
		db := openTest(b, b.TempDir(), testOpts(kind))
		const n = 10000
		mustAlloc(b, db, n)
		recs := make([][]byte, n)
		for i := range recs {
			recs[i] = smallRec(uint64(i))
		}
		mustCommit(b, db, recs...)
		for i := 0; i < n; i++ { // warm
			db.Load(uint64(i))
		}
		r := rand.New(rand.NewPCG(1, 2))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := db.Load(uint64(r.IntN(n))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGC measures the reference-count collector: b.N unreferenced
// objects (in chains of 10) are removed.
func BenchmarkGC(b *testing.B) {
	benchBackends(b, func(b *testing.B, kind string) {
		db := openTest(b, b.TempDir(), testOpts(kind))
		ctx := context.Background()
		first := mustAlloc(b, db, b.N+1)
		mustCommit(b, db, smallRec(0))
		var recs [][]byte
		for i := 1; i <= b.N; i++ {
			oid := first + uint64(i)
			if i%10 != 0 && i < b.N {
				recs = append(recs, smallRec(oid, oid+1))
			} else {
				recs = append(recs, smallRec(oid))
			}
			if len(recs) == 5000 {
				mustCommit(b, db, recs...)
				recs = recs[:0]
			}
		}
		if len(recs) > 0 {
			mustCommit(b, db, recs...)
		}
		b.ResetTimer()
		start := time.Now()
		n, err := db.CollectGarbageGrace(ctx, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		if n != b.N {
			b.Fatalf("removed %d of %d", n, b.N)
		}
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "objects/s")
	})
}

// BenchmarkFullCollect: a collection over 10,000 objects, half reachable.
func BenchmarkFullCollect(b *testing.B) {
	benchBackends(b, func(b *testing.B, kind string) {
		db := openTest(b, b.TempDir(), testOpts(kind))
		ctx := context.Background()
		const n = 10000
		total := 0
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			first := mustAlloc(b, db, n)
			var recs [][]byte
			var kids []uint64
			for j := 0; j < n; j++ {
				oid := first + uint64(j)
				if oid == 0 {
					continue
				}
				if j%2 == 0 {
					kids = append(kids, oid)
				}
				if j == 0 {
					recs = append(recs, smallRec(oid))
				} else {
					recs = append(recs, smallRec(oid, oid-1)) // odd ones: unreachable chain links
				}
			}
			recs = append(recs, smallRec(0, kids...))
			mustCommit(b, db, recs...)
			b.StartTimer()
			st, err := db.FullCollect(ctx)
			if err != nil {
				b.Fatal(err)
			}
			total += st.Marked + st.Removed
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "objects/s")
	})
}

// BenchmarkImport: 20,000 records of ~200 bytes per iteration.
func BenchmarkImport(b *testing.B) {
	benchBackends(b, func(b *testing.B, kind string) {
		const n = 20000
		recs := make([][]byte, n)
		var size int64
		for i := range recs {
			data := make([]byte, 180)
			var refs []uint64
			if i > 0 {
				refs = []uint64{uint64(i / 2)}
			}
			recs[i] = record.Build(uint64(i), data, refs...)
			size += int64(len(recs[i]))
		}
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			db := openTest(b, b.TempDir(), testOpts(kind))
			b.StartTimer()
			st, err := db.Import(context.Background(), source(recs...), ImportOptions{})
			if err != nil || st.Objects != n {
				b.Fatal(st, err)
			}
			b.StopTimer()
			db.Close()
			b.StartTimer()
		}
	})
}

// BenchmarkApply measures the apply of one-record commits without the
// flush (durability nosync): alone (one transaction each) and staged in
// groups of 8, applied by one run (one transaction per group), as the
// server's token hands them in under load.
func BenchmarkApply(b *testing.B) {
	benchBackends(b, func(b *testing.B, kind string) {
		for _, group := range []int{1, 8} {
			b.Run(fmt.Sprintf("group%d", group), func(b *testing.B) {
				opts := testOpts(kind)
				opts.Durability = kv.NoSync
				db := openTest(b, b.TempDir(), opts)
				ctx := context.Background()
				mustAlloc(b, db, 1)
				mustCommit(b, db, smallRec(0))
				ps := make([]*Pending, group)
				b.ResetTimer()
				for i := 0; i < b.N; i += group {
					first, err := db.AllocOIDs(group)
					if err != nil {
						b.Fatal(err)
					}
					for j := range ps {
						if ps[j], err = db.Stage(ctx, [][]byte{smallRec(first + uint64(j))}); err != nil {
							b.Fatal(err)
						}
					}
					for _, p := range ps {
						if err := p.Wait(ctx); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/commit")
			})
		}
	})
}
