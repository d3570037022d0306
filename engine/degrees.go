package engine

import (
	"maps"
	"slices"
)

// denseDegreeLimit bounds the oids counted in a slice: below it a count
// costs 4 bytes per oid up to the largest referenced one (Durus oids are
// handed out densely from 0), at or above it (a sparse or damaged oid
// space) the counts move to a map.
const denseDegreeLimit = 1 << 27

// degrees counts references per oid (in-degrees) for an import. The zero
// value is ready.
type degrees struct {
	dense  []uint32          // dense[oid]; nil once sparse is used
	sparse map[uint64]uint32 // non-nil once an oid reached denseDegreeLimit
}

// add counts one reference to oid.
func (d *degrees) add(oid uint64) {
	if d.sparse == nil {
		if oid < uint64(len(d.dense)) {
			d.dense[oid]++
			return
		}
		if oid < denseDegreeLimit {
			n := max(oid+1, uint64(2*len(d.dense)), 1024)
			d.dense = append(d.dense, make([]uint32, min(n, denseDegreeLimit)-uint64(len(d.dense)))...)
			d.dense[oid]++
			return
		}
		d.sparse = make(map[uint64]uint32)
		for o, c := range d.dense {
			if c > 0 {
				d.sparse[uint64(o)] = c
			}
		}
		d.dense = nil
	}
	d.sparse[oid]++
}

// get returns the count of oid.
func (d *degrees) get(oid uint64) uint32 {
	if d.sparse != nil {
		return d.sparse[oid]
	}
	if oid < uint64(len(d.dense)) {
		return d.dense[oid]
	}
	return 0
}

// each calls fn with every oid of non-zero count, in ascending oid order,
// until fn returns false.
func (d *degrees) each(fn func(oid uint64, n uint32) bool) {
	if d.sparse != nil {
		for _, o := range slices.Sorted(maps.Keys(d.sparse)) {
			if !fn(o, d.sparse[o]) {
				return
			}
		}
		return
	}
	for o, c := range d.dense {
		if c > 0 && !fn(uint64(o), c) {
			return
		}
	}
}

// reset forgets every count.
func (d *degrees) reset() { *d = degrees{} }
