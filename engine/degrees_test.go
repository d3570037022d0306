package engine

import (
	"math/rand/v2"
	"testing"
)

// TestDegrees: dense and sparse counting agree with a map model, in
// ascending order, across the switch from slice to map.
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
	if d.sparse != nil {
		t.Fatal("dense oids went to the map")
	}
	check("dense")
	for _, oid := range []uint64{denseDegreeLimit, 1 << 40, 7} {
		d.add(oid)
		model[oid]++
	}
	if d.sparse == nil {
		t.Fatal("an oid at the dense limit did not switch to the map")
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
