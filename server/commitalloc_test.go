package server

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

// fanoutServer is a Server with n open connections (no sockets) for the
// invalidation fan-out, and the connection that commits.
func fanoutServer(n int) (*Server, *conn) {
	s := &Server{cfg: Config{MaxInvalid: 1 << 30, MaxInvalidRuns: 1 << 20, MaxInvalidMemory: 1 << 30}}
	s.connSet.conns = make(map[*conn]struct{})
	s.commitPath.open, s.commitPath.cfg = &s.connSet, &s.cfg
	var first *conn
	for i := range n {
		c := &conn{s: s, id: uint64(i + 1)}
		s.connSet.conns[c] = struct{}{}
		if first == nil {
			first = c
		}
	}
	return s, first
}

// The fan-out of a commit to the other connections (under the commit
// token) reuses its list of connections: no allocation per commit once
// warm, whatever the number of connections, and every other connection
// gets the oids.
func TestInvalidateFanoutNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Log("allocation counts are not checked under the race detector")
	}
	s, committer := fanoutServer(32)
	oid := uint64(100)
	rs := []run{{}}
	commitOne := func() {
		rs[0] = run{oid, oid + 1}
		s.invalidate(rs, committer, false)
		oid += 2
		for c := range s.connSet.conns {
			c.takeInvalid() // the connection's next phase 1
		}
	}
	commitOne()
	if !raceEnabled {
		if a := testing.AllocsPerRun(200, commitOne); a != 0 {
			t.Fatalf("%.1f allocations per fan-out to 31 connections, want 0", a)
		}
	}
	s.invalidate([]run{{7, 9}}, committer, false)
	for c := range s.connSet.conns {
		want := c != committer
		if got := c.isInvalid(7) && c.isInvalid(8); got != want {
			t.Fatalf("conn %d: oids 7-8 invalid %v, want %v", c.id, got, want)
		}
	}
}

// BenchmarkInvalidateFanout is the invalidation fan-out of a one-oid
// commit to 31 other connections whose invalid sets hold 31 runs each
// (32 connections committing in turn), the part of a commit's serial
// section that grows with the connections.
func BenchmarkInvalidateFanout(b *testing.B) {
	s, committer := fanoutServer(32)
	conns := make([]*conn, 0, 32)
	for c := range s.connSet.conns {
		conns = append(conns, c)
	}
	oid := uint64(100)
	rs := []run{{}}
	b.ReportAllocs()
	for i := range b.N {
		rs[0] = run{oid, oid + 1}
		oid += 2
		s.invalidate(rs, committer, false)
		conns[i%len(conns)].takeInvalid()
	}
}

// oneFrame is the commit data of one record of oid with no references:
// int4 frame length, the oid, the record.
func oneFrame(oid uint64) []byte {
	rec := record.Build(oid, []byte("data"))
	frame := binary.BigEndian.AppendUint32(nil, uint32(8+len(rec)))
	frame = binary.BigEndian.AppendUint64(frame, oid)
	return append(frame, rec...)
}

// A connection's commits reuse the memory of the frames' oids and offsets,
// their sorted copy and their runs: only the records slice (which the
// storage may keep) is allocated per commit, and the results are those of
// the allocating path.
func TestCommitScratchReuse(t *testing.T) {
	s, _ := fanoutServer(0)
	var sc commitScratch
	data := append(oneFrame(9), oneFrame(7)...)
	f, sorted, fe := s.checkFramesInto(&sc, data)
	if fe != nil {
		t.Fatalf("refused: %s", fe.msg)
	}
	f2, sorted2, _ := s.checkFrames(data)
	if !slices.Equal(f.oids, f2.oids) || !slices.Equal(f.offs, f2.offs) || !slices.Equal(sorted, sorted2) ||
		!slices.Equal(sorted, []uint64{7, 9}) || len(f.recs) != 2 {
		t.Fatalf("reused path: oids %v offs %v sorted %v; allocating path: %v %v %v", f.oids, f.offs, sorted, f2.oids, f2.offs, sorted2)
	}
	if rs := runsOfInto(sc.runs[:0], sorted); !slices.Equal(rs, runsOf(sorted)) {
		t.Fatalf("runsOfInto %v, runsOf %v", rs, runsOf(sorted))
	}
	if raceEnabled {
		return // allocation counts are not meaningful under the race detector
	}
	one := oneFrame(5)
	a := testing.AllocsPerRun(100, func() {
		_, sorted, _ := s.checkFramesInto(&sc, one)
		sc.runs = runsOfInto(sc.runs[:0], sorted)[:0]
	})
	if a > 1 {
		t.Fatalf("%.1f allocations per commit of one record, want 1 (the records slice)", a)
	}
}
