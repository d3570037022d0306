package server

import (
	"encoding/binary"
	"slices"
	"sort"
)

// run is the half-open oid range [lo, hi).
type run struct{ lo, hi uint64 }

// runsOf turns ascending oids (repeats allowed) into maximal runs.
func runsOf(sorted []uint64) []run { return runsOfInto(nil, sorted) }

// runsOfInto is runsOf appending the runs to out.
func runsOfInto(out []run, sorted []uint64) []run {
	for _, o := range sorted {
		if n := len(out); n > 0 && o <= out[n-1].hi {
			if o == out[n-1].hi {
				out[n-1].hi++
			}
			continue
		}
		out = append(out, run{o, o + 1})
	}
	return out
}

// runSet is a set of oids kept as sorted, disjoint, non-adjacent runs. It is
// the compact invalid set of §9 (commits invalidate contiguous runs). Not
// safe for concurrent use.
//
// It reuses its memory: merges work in place, and take hands out the runs
// while the set goes on in the slice the previous take handed out, so a
// connection's invalid set allocates nothing once its slices have grown.
type runSet struct {
	runs  []run
	n     uint64 // number of oids
	spare []run  // what the previous take returned, emptied by the next
}

// maxSpareRuns is the capacity above which take lets a slice go rather
// than keep it for reuse (16 bytes a run).
const maxSpareRuns = 4096

// len returns the number of oids in the set.
func (s *runSet) len() uint64 { return s.n }

// contains reports whether oid is in the set.
func (s *runSet) contains(oid uint64) bool {
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].hi > oid })
	return i < len(s.runs) && s.runs[i].lo <= oid
}

// addRuns merges the sorted disjoint runs rs into the set in one pass.
func (s *runSet) addRuns(rs []run) {
	if len(rs) == 0 {
		return
	}
	if len(s.runs) == 0 {
		s.runs = append(s.runs, rs...)
		s.n = 0
		for _, r := range rs {
			s.n += r.hi - r.lo
		}
		return
	}
	// Fast path: everything after the last run.
	if last := s.runs[len(s.runs)-1]; rs[0].lo > last.hi {
		s.runs = append(s.runs, rs...)
		for _, r := range rs {
			s.n += r.hi - r.lo
		}
		return
	}
	// One run (a commit of contiguous oids: the invalidation fan-out's
	// common case, once per other connection under the commit token), or
	// few runs into a big set: insert each in place (a binary search and
	// a memmove) rather than merge through the whole set, so a small
	// commit costs little even to a connection with many runs.
	if len(rs) == 1 || len(rs)*32 < len(s.runs) {
		for _, r := range rs {
			s.insert(r)
		}
		return
	}
	s.merge(rs)
}

// mergedSize returns the runs and oids the set would hold with rs (sorted,
// disjoint) added, without adding them: a connection whose set would go
// over a cap is closed without first growing its set.
func (s *runSet) mergedSize(rs []run) (runs int, oids uint64) {
	var cur run
	have := false
	i, j := 0, 0
	for i < len(s.runs) || j < len(rs) {
		var r run
		if j >= len(rs) || i < len(s.runs) && s.runs[i].lo <= rs[j].lo {
			r, i = s.runs[i], i+1
		} else {
			r, j = rs[j], j+1
		}
		if have && r.lo <= cur.hi {
			cur.hi = max(cur.hi, r.hi)
			continue
		}
		if have {
			runs, oids = runs+1, oids+cur.hi-cur.lo
		}
		cur, have = r, true
	}
	if have {
		runs, oids = runs+1, oids+cur.hi-cur.lo
	}
	return runs, oids
}

// merge merges rs into the set in place: the runs are grown by len(rs),
// merged by lo from the back (a slot is written only once its old run has
// been read), then overlapping and touching runs are joined front to back.
func (s *runSet) merge(rs []run) {
	m := len(s.runs)
	s.runs = slices.Grow(s.runs, len(rs))[:m+len(rs)]
	i, j := m-1, len(rs)-1
	for k := len(s.runs) - 1; j >= 0; k-- {
		if i >= 0 && s.runs[i].lo > rs[j].lo {
			s.runs[k] = s.runs[i]
			i--
		} else {
			s.runs[k] = rs[j]
			j--
		}
	}
	w := 0
	var n uint64
	for _, r := range s.runs {
		if w > 0 && r.lo <= s.runs[w-1].hi {
			if r.hi > s.runs[w-1].hi {
				n += r.hi - s.runs[w-1].hi
				s.runs[w-1].hi = r.hi
			}
			continue
		}
		s.runs[w] = r
		w++
		n += r.hi - r.lo
	}
	s.runs, s.n = s.runs[:w], n
}

// insert adds the run r to the set, merging it with the runs it overlaps
// or touches.
func (s *runSet) insert(r run) {
	// runs[i:j] overlap or touch r.
	i := sort.Search(len(s.runs), func(i int) bool { return s.runs[i].hi >= r.lo })
	j := i + sort.Search(len(s.runs)-i, func(k int) bool { return s.runs[i+k].lo > r.hi })
	if i == j {
		s.runs = slices.Insert(s.runs, i, r)
		s.n += r.hi - r.lo
		return
	}
	m := run{min(s.runs[i].lo, r.lo), max(s.runs[j-1].hi, r.hi)}
	for _, old := range s.runs[i:j] {
		s.n -= old.hi - old.lo
	}
	s.n += m.hi - m.lo
	s.runs = slices.Replace(s.runs, i, j, m)
}

// take empties the set and returns its former runs, which stay valid
// until the next take or drop: the set then reuses their memory (the
// connection writes them out before it takes again).
func (s *runSet) take() ([]run, uint64) {
	rs, n := s.runs, s.n
	s.runs, s.n = nil, 0
	s.runs = s.spare[:0]
	s.spare = nil
	if cap(rs) <= maxSpareRuns {
		s.spare = rs
	}
	return rs, n
}

// drop empties the set and lets its memory go, the runs a take returned
// included (a closed connection's).
func (s *runSet) drop() {
	s.runs, s.n, s.spare = nil, 0, nil
}

// appendRunOIDs appends every oid of rs as 8 big-endian bytes.
func appendRunOIDs(b []byte, rs []run) []byte {
	for _, r := range rs {
		for o := r.lo; o < r.hi; o++ {
			b = binary.BigEndian.AppendUint64(b, o)
		}
	}
	return b
}

// ownedRun is a run of oids handed to one connection and not yet committed.
type ownedRun struct {
	lo, hi uint64
	owner  *conn
}

// ownerRuns is the unused sets of all connections (§5.1) as one ordered list
// of disjoint runs, each with its owner. Allocation hands out oids upward
// from the cursor, so new runs normally go at the end. Guarded by
// commitPath.allocMu.
type ownerRuns struct {
	runs  []ownedRun
	spare []ownedRun // the list before the last rebuild, reused by the next
}

// rebuilt returns an empty slice of capacity at least n for a new run
// list: the memory of the list before the last rebuild, so that a commit
// that takes oids does not allocate a new list each time.
func (o *ownerRuns) rebuilt(n int) []ownedRun {
	out := slices.Grow(o.spare[:0], n)
	o.spare = nil
	return out
}

// replace makes out the run list, keeping the old one for the next
// rebuild unless it is large.
func (o *ownerRuns) replace(out []ownedRun) {
	old := o.runs
	o.runs = out
	if cap(old) <= maxSpareRuns {
		clear(old[:cap(old)]) // drop the *conn references
		o.spare = old[:0]
	}
}

// find returns the index of the run containing oid, or -1.
func (o *ownerRuns) find(oid uint64) int {
	i := sort.Search(len(o.runs), func(i int) bool { return o.runs[i].hi > oid })
	if i < len(o.runs) && o.runs[i].lo <= oid {
		return i
	}
	return -1
}

// owner returns the connection holding oid in its unused set, or nil.
func (o *ownerRuns) owner(oid uint64) *conn {
	if i := o.find(oid); i >= 0 {
		return o.runs[i].owner
	}
	return nil
}

// add records [lo, hi) as owned by c. The range must not overlap any run
// (oids are handed out once, A3).
func (o *ownerRuns) add(lo, hi uint64, c *conn) {
	if lo >= hi {
		return
	}
	i := sort.Search(len(o.runs), func(i int) bool { return o.runs[i].lo >= lo })
	if i > 0 && o.runs[i-1].owner == c && o.runs[i-1].hi == lo &&
		(i == len(o.runs) || o.runs[i].lo >= hi) {
		o.runs[i-1].hi = hi
		if i < len(o.runs) && o.runs[i].owner == c && o.runs[i].lo == hi {
			o.runs[i-1].hi = o.runs[i].hi
			o.runs = slices.Delete(o.runs, i, i+1)
		}
		return
	}
	if i < len(o.runs) && o.runs[i].owner == c && o.runs[i].lo == hi {
		o.runs[i].lo = lo
		return
	}
	o.runs = slices.Insert(o.runs, i, ownedRun{lo, hi, c})
}

// removeSorted takes the oids of sorted (ascending, distinct) that c owns
// out of c's runs and returns them as runs. It is one pass whatever the
// order the commit listed them in: a binary search per run touched
// (O(k log n) for k oids) and, if anything was taken, one copy of the run
// list, instead of a slice insertion per oid (quadratic for a commit of
// every other oid of a run in descending order).
func (o *ownerRuns) removeSorted(sorted []uint64, c *conn) []run {
	var out []ownedRun // the new list, built once something is taken
	var taken []run
	pos := 0 // o.runs[:pos] are in out already (or untouched if out is nil)
	for k := 0; k < len(sorted); {
		oid := sorted[k]
		rest := o.runs[pos:]
		i := pos + sort.Search(len(rest), func(j int) bool { return rest[j].hi > oid })
		if i == len(o.runs) {
			break // no run holds oid or anything above it
		}
		r := o.runs[i]
		if oid < r.lo {
			k++ // nobody's
			continue
		}
		// sorted[k:j] lie in r.
		j := k + 1
		for j < len(sorted) && sorted[j] < r.hi {
			j++
		}
		if r.owner != c {
			k = j
			continue
		}
		if out == nil {
			out = o.rebuilt(len(o.runs) + (j - k))
		}
		out = append(out, o.runs[pos:i]...)
		lo := r.lo
		for _, cut := range sorted[k:j] {
			if cut > lo {
				out = append(out, ownedRun{lo, cut, c})
			}
			lo = cut + 1
			if n := len(taken); n > 0 && taken[n-1].hi == cut {
				taken[n-1].hi++
			} else {
				taken = append(taken, run{cut, cut + 1})
			}
		}
		if lo < r.hi {
			out = append(out, ownedRun{lo, r.hi, c})
		}
		pos = i + 1
		k = j
	}
	if out != nil {
		o.replace(append(out, o.runs[pos:]...))
	}
	return taken
}

// restore gives c back the runs rs (sorted, disjoint, owned by nobody now),
// as taken by removeSorted for a commit that was then refused: one merge.
func (o *ownerRuns) restore(rs []run, c *conn) {
	if len(rs) == 0 {
		return
	}
	out := o.rebuilt(len(o.runs) + len(rs))
	push := func(r ownedRun) {
		if n := len(out); n > 0 && out[n-1].owner == r.owner && out[n-1].hi == r.lo {
			out[n-1].hi = r.hi
			return
		}
		out = append(out, r)
	}
	i, j := 0, 0
	for i < len(o.runs) || j < len(rs) {
		if j == len(rs) || (i < len(o.runs) && o.runs[i].lo < rs[j].lo) {
			push(o.runs[i])
			i++
		} else {
			push(ownedRun{rs[j].lo, rs[j].hi, c})
			j++
		}
	}
	o.replace(out)
}

// removeOwner drops every run of c and returns how many oids it held.
func (o *ownerRuns) removeOwner(c *conn) uint64 {
	var n uint64
	k := 0
	for _, r := range o.runs {
		if r.owner == c {
			n += r.hi - r.lo
			continue
		}
		o.runs[k] = r
		k++
	}
	clear(o.runs[k:])
	o.runs = o.runs[:k]
	return n
}
