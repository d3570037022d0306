package engine

import (
	"maps"
	"slices"
)

// denseDegreeLimit bounds the oids counted in the slice: below it a count
// costs 4 bytes per oid up to the largest referenced one (Durus oids are
// handed out densely from 0); oids at or above it (a sparse or damaged
// oid space) are counted in a map, which holds only those.
const denseDegreeLimit = 1 << 27

// degrees counts references per oid (in-degrees), for Check and Import:
// the one in-degree count of the engine.
//
// A slice indexed by oid, not a map: at 10M objects with dense oids the
// slice holds 41 MB (4.1 bytes per oid, BenchmarkDegreesMemory), where a
// map[uint64]uint32 holds 303 MB (30.3 bytes per entry: 8+4 bytes per
// slot padded to 16, control bytes, load factor and doubling on growth),
// and the slice walks in ascending oid order without sorting. A reference to an oid at
// or above the limit (damage, a hand-made oid) goes to the overflow map,
// so that one stray oid never allocates a huge slice and the dense counts
// stay in the slice. The zero value is ready.
type degrees struct {
	limit    uint64            // dense oids are below it; 0 means denseDegreeLimit
	dense    []uint32          // dense[oid]
	overflow map[uint64]uint32 // oids >= limit
}

// newDegrees returns counts whose slice covers oids below limit (clamped
// to denseDegreeLimit; 0 means denseDegreeLimit). Check passes a bound
// from the stored next_oid, so that a damaged reference beyond every
// stored oid costs a map entry, not a slice up to it.
func newDegrees(limit uint64) degrees {
	if limit == 0 || limit > denseDegreeLimit {
		limit = denseDegreeLimit
	}
	return degrees{limit: limit}
}

func (d *degrees) denseLimit() uint64 {
	if d.limit == 0 {
		return denseDegreeLimit
	}
	return d.limit
}

// add counts one reference to oid.
func (d *degrees) add(oid uint64) {
	if oid < uint64(len(d.dense)) {
		d.dense[oid]++
		return
	}
	if lim := d.denseLimit(); oid < lim {
		// Double while small, then grow by a quarter: at most 25% unused.
		l := uint64(len(d.dense))
		grown := make([]uint32, min(max(oid+1, l+max(l/4, min(l, 1<<20)), 1024), lim))
		copy(grown, d.dense)
		d.dense = grown
		d.dense[oid]++
		return
	}
	if d.overflow == nil {
		d.overflow = make(map[uint64]uint32)
	}
	d.overflow[oid]++
}

// get returns the count of oid.
func (d *degrees) get(oid uint64) uint32 {
	if oid < uint64(len(d.dense)) {
		return d.dense[oid]
	}
	return d.overflow[oid]
}

// each calls fn with every oid of non-zero count, in ascending oid order,
// until fn returns false.
func (d *degrees) each(fn func(oid uint64, n uint32) bool) {
	for o, c := range d.dense {
		if c > 0 && !fn(uint64(o), c) {
			return
		}
	}
	for _, o := range slices.Sorted(maps.Keys(d.overflow)) { // all above the slice
		if !fn(o, d.overflow[o]) {
			return
		}
	}
}

// reset forgets every count (the limit stays).
func (d *degrees) reset() { *d = degrees{limit: d.limit} }
