package server

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// runSet against a map model; mergedSize, asked before each merge,
// predicts the runs and oids the merge makes.
func TestRunSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 200 {
		var s runSet
		model := map[uint64]bool{}
		for range 1 + rng.IntN(10) {
			var oids []uint64
			for range rng.IntN(20) {
				o := uint64(rng.IntN(100))
				oids = append(oids, o)
				model[o] = true
			}
			slices.Sort(oids)
			rs := runsOf(oids)
			wantRuns, wantOIDs := s.mergedSize(rs)
			s.addRuns(rs)
			if len(s.runs) != wantRuns || s.len() != wantOIDs {
				t.Fatalf("round %d: mergedSize said %d runs, %d oids; the merge made %d, %d", round, wantRuns, wantOIDs, len(s.runs), s.len())
			}
		}
		if s.len() != uint64(len(model)) {
			t.Fatalf("round %d: len %d, model %d", round, s.len(), len(model))
		}
		for o := uint64(0); o < 101; o++ {
			if s.contains(o) != model[o] {
				t.Fatalf("round %d: contains(%d) = %v", round, o, s.contains(o))
			}
		}
		for i := 1; i < len(s.runs); i++ {
			if s.runs[i].lo <= s.runs[i-1].hi {
				t.Fatalf("round %d: runs not disjoint and separated: %v", round, s.runs)
			}
		}
		rs, n := s.take()
		got := appendRunOIDs(nil, rs)
		if uint64(len(got)) != 8*n || s.len() != 0 {
			t.Fatalf("take: %d bytes for %d oids", len(got), n)
		}
	}
}

// ownerRuns against a map model.
func TestOwnerRunsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	conns := []*conn{{id: 1}, {id: 2}, {id: 3}}
	var o ownerRuns
	model := map[uint64]*conn{}
	next := uint64(0)
	for step := range 5000 {
		c := conns[rng.IntN(len(conns))]
		switch rng.IntN(4) {
		case 0, 1: // allocate a run (sometimes the root again)
			if next > 0 && rng.IntN(20) == 0 && model[0] == nil {
				o.add(0, 1, c)
				model[0] = c
				continue
			}
			k := uint64(1 + rng.IntN(5))
			o.add(next, next+k, c)
			for x := next; x < next+k; x++ {
				model[x] = c
			}
			next += k
		case 2: // commit one oid
			if next == 0 {
				continue
			}
			x := uint64(rng.IntN(int(next)))
			want := model[x] == c
			if got := len(o.removeSorted([]uint64{x}, c)) == 1; got != want {
				t.Fatalf("step %d: remove(%d) = %v, want %v", step, x, got, want)
			}
			if want {
				delete(model, x)
			}
		case 3: // disconnect, rarely
			if rng.IntN(10) != 0 {
				continue
			}
			var n uint64
			for x, ow := range model {
				if ow == c {
					delete(model, x)
					n++
				}
			}
			if got := o.removeOwner(c); got != n {
				t.Fatalf("step %d: removeOwner %d, want %d", step, got, n)
			}
		}
		for x := uint64(0); x < next; x++ {
			if o.owner(x) != model[x] {
				t.Fatalf("step %d: owner(%d) wrong", step, x)
			}
		}
	}
}

// removeSorted and restore against a map model, with commits of random
// oid sets (some owned by the committer, some by others, some by nobody).
func TestOwnerRunsBatchModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	conns := []*conn{{id: 1}, {id: 2}, {id: 3}}
	var o ownerRuns
	model := map[uint64]*conn{}
	next := uint64(0)
	for step := range 3000 {
		c := conns[rng.IntN(len(conns))]
		if rng.IntN(3) == 0 {
			k := uint64(1 + rng.IntN(8))
			o.add(next, next+k, c)
			for x := next; x < next+k; x++ {
				model[x] = c
			}
			next += k
			continue
		}
		set := map[uint64]bool{}
		for range rng.IntN(12) {
			set[uint64(rng.IntN(int(next)+3))] = true
		}
		var sorted []uint64
		for x := range set {
			sorted = append(sorted, x)
		}
		slices.Sort(sorted)
		var want []uint64
		for _, x := range sorted {
			if model[x] == c {
				want = append(want, x)
			}
		}
		taken := o.removeSorted(sorted, c)
		var got []uint64
		for _, r := range taken {
			for x := r.lo; x < r.hi; x++ {
				got = append(got, x)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: removeSorted(%v) took %v, want %v", step, sorted, got, want)
		}
		if slices.Equal(taken, runsOf(want)) == false {
			t.Fatalf("step %d: taken runs %v not maximal", step, taken)
		}
		if rng.IntN(4) == 0 { // the commit was refused: give them back
			o.restore(taken, c)
		} else {
			for _, x := range want {
				delete(model, x)
			}
		}
		for i := 1; i < len(o.runs); i++ {
			p, r := o.runs[i-1], o.runs[i]
			if r.lo < p.hi || (r.lo == p.hi && r.owner == p.owner) || r.lo >= r.hi {
				t.Fatalf("step %d: runs %d, %d: %+v %+v", step, i-1, i, p, r)
			}
		}
		for x := uint64(0); x < next+3; x++ {
			if o.owner(x) != model[x] {
				t.Fatalf("step %d: owner(%d) wrong", step, x)
			}
		}
	}
}

// runSet with few runs added to a big set (the in-place insertion path)
// against a map model.
func TestRunSetInsertModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for round := range 100 {
		var s runSet
		model := map[uint64]bool{}
		var oids []uint64
		for range 400 {
			o := uint64(rng.IntN(2000))
			oids = append(oids, o)
			model[o] = true
		}
		slices.Sort(oids)
		s.addRuns(runsOf(oids))
		for range 20 {
			var add []uint64
			for range 1 + rng.IntN(3) {
				lo := uint64(rng.IntN(2010))
				for o := lo; o < lo+uint64(rng.IntN(6)); o++ {
					add = append(add, o)
					model[o] = true
				}
			}
			slices.Sort(add)
			if len(runsOf(add))*32 >= len(s.runs) {
				t.Fatalf("round %d: test does not reach the insertion path", round)
			}
			s.addRuns(runsOf(add))
		}
		if s.len() != uint64(len(model)) {
			t.Fatalf("round %d: len %d, model %d", round, s.len(), len(model))
		}
		for o := uint64(0); o < 2020; o++ {
			if s.contains(o) != model[o] {
				t.Fatalf("round %d: contains(%d) = %v", round, o, s.contains(o))
			}
		}
		for i := 1; i < len(s.runs); i++ {
			if s.runs[i].lo <= s.runs[i-1].hi {
				t.Fatalf("round %d: runs not disjoint and separated at %d", round, i)
			}
		}
	}
}

// A runSet reused across takes (a connection's invalid set): every take
// returns exactly what was added since the one before, a taken slice is
// not disturbed by the additions that follow until the next take, and
// once the slices have grown, adding and taking allocates nothing.
func TestRunSetReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var s runSet
	var prev []run // what the previous take returned
	var prevWant []byte
	for round := range 300 {
		model := map[uint64]bool{}
		for range 1 + rng.IntN(8) {
			var oids []uint64
			base := uint64(rng.IntN(200))
			for range 1 + rng.IntN(6) {
				o := base + uint64(rng.IntN(12))
				oids = append(oids, o)
				model[o] = true
			}
			slices.Sort(oids)
			s.addRuns(runsOf(oids))
		}
		if got := appendRunOIDs(nil, prev); string(got) != string(prevWant) {
			t.Fatalf("round %d: the previous take's runs changed before the next take", round)
		}
		rs, n := s.take()
		var want []uint64
		for o := range model {
			want = append(want, o)
		}
		slices.Sort(want)
		wantB := appendRunOIDs(nil, runsOf(want))
		if got := appendRunOIDs(nil, rs); string(got) != string(wantB) || n != uint64(len(want)) {
			t.Fatalf("round %d: took %d oids %v, want %v", round, n, rs, runsOf(want))
		}
		if s.len() != 0 || s.contains(want[0]) {
			t.Fatalf("round %d: set not empty after take", round)
		}
		prev, prevWant = rs, wantB
	}
	// Three commits' runs out of order (the in-place merge) and a take.
	cycle := func() {
		s.addRuns([]run{{100, 102}, {110, 111}})
		s.addRuns([]run{{50, 52}, {105, 106}})
		s.addRuns([]run{{10, 11}, {101, 104}})
		s.take()
	}
	cycle()
	cycle()
	if a := testing.AllocsPerRun(100, cycle); a != 0 {
		t.Errorf("adding and taking allocates %.1f times", a)
	}
	s.drop()
	if s.len() != 0 || s.runs != nil || s.spare != nil {
		t.Errorf("drop kept memory: %v %v", s.runs, s.spare)
	}
}

// Taking a committed oid out of the owners' runs rebuilds the run list in
// the memory of the list before: one allocation (the taken runs the caller
// keeps), not two, per commit.
func TestOwnerRunsReuse(t *testing.T) {
	conns := []*conn{{id: 1}, {id: 2}, {id: 3}}
	var o ownerRuns
	next := uint64(1)
	for _, c := range conns {
		o.add(next, next+1000, c)
		next += 1000
	}
	oid := uint64(1)
	take := func() {
		taken := o.removeSorted([]uint64{oid, oid + 1000}, conns[0])
		if len(taken) != 1 || taken[0] != (run{oid, oid + 1}) {
			t.Fatalf("took %v, want oid %d", taken, oid)
		}
		oid++
	}
	take()
	take()
	if a := testing.AllocsPerRun(100, take); a > 1 {
		t.Errorf("removeSorted allocates %.1f times", a)
	}
	if o.owner(oid) != conns[0] || o.owner(oid-1) != nil || o.owner(1500) != conns[1] {
		t.Errorf("runs after taking: %v", o.runs)
	}
}
