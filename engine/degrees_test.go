package engine

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestDegrees: slice and overflow-map counting agree with a map model,
// in ascending order, with oids on both sides of the dense limit.
func TestDegrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var d degrees
	model := map[uint64]uint32{}
	check := func(stage string) {
		t.Helper()
		var last uint64
		n := 0
		d.each(func(oid uint64, c uint32) bool {
			if n > 0 && oid <= last {
				t.Fatalf("%s: oid %d after %d: not ascending", stage, oid, last)
			}
			if model[oid] != c {
				t.Fatalf("%s: count of %d = %d, want %d", stage, oid, c, model[oid])
			}
			last = oid
			n++
			return true
		})
		if n != len(model) {
			t.Fatalf("%s: %d oids counted, want %d", stage, n, len(model))
		}
		for oid, c := range model {
			if d.get(oid) != c {
				t.Fatalf("%s: get(%d) = %d, want %d", stage, oid, d.get(oid), c)
			}
		}
		if d.get(1<<40) != model[1<<40] {
			t.Fatalf("%s: get of an oid never counted", stage)
		}
	}
	for range 20000 {
		oid := rng.Uint64N(50000)
		d.add(oid)
		model[oid]++
	}
	if d.overflow != nil {
		t.Fatal("dense oids went to the map")
	}
	check("dense")
	for _, oid := range []uint64{denseDegreeLimit, 1 << 40, 7} {
		d.add(oid)
		model[oid]++
	}
	if len(d.overflow) != 2 || d.overflow[7] != 0 {
		t.Fatalf("oids at and above the dense limit: map %v, want those two only (7 stays in the slice)", d.overflow)
	}
	check("sparse")
	stop := 0
	d.each(func(uint64, uint32) bool { stop++; return stop < 3 })
	if stop != 3 {
		t.Fatalf("each went on after false: %d calls", stop)
	}
	d.reset()
	if d.get(7) != 0 {
		t.Fatal("reset kept counts")
	}
}

// TestDegreesLimit: a bound from newDegrees keeps a stray large oid out of
// the slice (one map entry, not a slice up to it), and the counts stay
// right and ascending across the bound.
func TestDegreesLimit(t *testing.T) {
	d := newDegrees(1000)
	for _, oid := range []uint64{5, 999, 1000, 5_000_000, 5, 1000} {
		d.add(oid)
	}
	if len(d.dense) > 1000 {
		t.Fatalf("slice of %d counts for a limit of 1000", len(d.dense))
	}
	want := []struct {
		oid uint64
		n   uint32
	}{{5, 2}, {999, 1}, {1000, 2}, {5_000_000, 1}}
	i := 0
	d.each(func(oid uint64, n uint32) bool {
		if i >= len(want) || want[i].oid != oid || want[i].n != n {
			t.Fatalf("count %d: oid %d n %d, want %+v", i, oid, n, want)
		}
		i++
		return true
	})
	if i != len(want) {
		t.Fatalf("%d counts, want %d", i, len(want))
	}
	if newDegrees(0).limit != denseDegreeLimit || newDegrees(1<<40).limit != denseDegreeLimit {
		t.Fatal("a limit of 0 or above denseDegreeLimit is not denseDegreeLimit")
	}
	d.reset()
	if d.limit != 1000 || d.get(5) != 0 {
		t.Fatal("reset kept counts or dropped the limit")
	}
}

// BenchmarkDegreesMemory compares the heap of the in-degree count
// (unbounded as in import, bounded by next_oid as in check) with a
// map[uint64]uint32 (what check used before) at 10M dense oids, each
// referenced once: B/oid of each is reported.
func BenchmarkDegreesMemory(b *testing.B) {
	const n = 10_000_000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	count := func(d degrees) uint64 {
		base := heap()
		for oid := range uint64(n) {
			d.add(oid)
		}
		used := heap() - base
		runtime.KeepAlive(&d)
		return used
	}
	for range b.N {
		sliceBytes := count(degrees{})               // import: no bound known
		boundedBytes := count(newDegrees(n + 1<<20)) // check: bounded by next_oid
		base := heap()
		m := make(map[uint64]uint32)
		for oid := range uint64(n) {
			m[oid]++
		}
		mapBytes := heap() - base
		runtime.KeepAlive(m)
		b.ReportMetric(float64(sliceBytes)/n, "slice-B/oid")
		b.ReportMetric(float64(boundedBytes)/n, "bounded-B/oid")
		b.ReportMetric(float64(mapBytes)/n, "map-B/oid")
	}
}
