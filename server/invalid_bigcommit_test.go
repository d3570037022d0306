package server

import (
	"testing"
	"time"
)

// F3: one commit of more records than an invalid set may hold
// (Config.MaxInvalid) used to be applied and then close every other
// connection (I7): their sets, however recently synced, went over the cap
// at once. It is refused with E (rule 1) before anything is announced:
// the idle connection stays open, is told of nothing, and the committer
// keeps its connection and its unused oids. A commit of exactly the cap
// is applied and the idle connection is told of all of it; only a set
// that accumulates changes without a sync goes over (TestInvalidCap).
func TestBigCommitRefusedKeepsOthers(t *testing.T) {
	const max = 100
	ts := startServer(t, Config{MaxInvalid: max}, newMemStore())
	idle := ts.dial(t)
	idle.sync()
	b := ts.dial(t)
	oids := b.newOIDs(max + 50)
	var recs [][]byte
	for _, o := range oids {
		recs = append(recs, rec(o, "x"))
	}
	seq := ts.srv.Token().Seq()
	_, st := b.commit(recs...)
	if st != 'E' {
		t.Errorf("commit of %d records with MaxInvalid %d: %q, want E", len(recs), max, st)
	}
	// The idle connection is open, usable, and was told of nothing.
	idle.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	inv, err := idle.wc().Sync()
	if err != nil {
		t.Fatalf("idle connection after another's commit of %d records: %v", len(recs), err)
	}
	if st != 'E' {
		t.FailNow()
	}
	if got := ts.srv.Token().Seq(); got != seq {
		t.Fatalf("a refused commit moved the sequence %d → %d", seq, got)
	}
	if !containsLog(ts, "150 records, more than the 100 oids") || !containsLog(ts, "--max-invalid") || !containsLog(ts, "rule=1") {
		t.Fatalf("the refusal is not logged with its numbers, rule and flag:\n%s", ts.logs.String())
	}
	if containsLog(ts, "closing connection") {
		t.Fatalf("a connection was closed:\n%s", ts.logs.String())
	}
	if len(inv) != 0 {
		t.Fatalf("idle connection told of %d oids of a refused commit", len(inv))
	}
	if st, _ := idle.load(oids[0]); st != 'K' {
		t.Fatalf("load of an oid of the refused commit: %q, want K", st)
	}
	if _, st := idle.commit(rec(oids[0], "stolen")); st != 'E' {
		t.Fatalf("idle commits b's unused oid: %q, want E (rule 7: still b's)", st)
	}
	idle.newOIDs(1)

	// The committer is open too: a commit within the cap is applied and
	// the idle connection is told of every oid of it.
	if _, st := b.commit(recs[:max]...); st != 'O' {
		t.Fatalf("commit of %d records (the cap): %q, want O", max, st)
	}
	if inv := idle.sync(); len(inv) != max {
		t.Fatalf("idle connection told of %d oids, want %d", len(inv), max)
	}
	if _, st := b.commit(recs[max:]...); st != 'O' {
		t.Fatalf("commit of the rest: %q", st)
	}
	if inv := idle.sync(); len(inv) != len(recs)-max {
		t.Fatalf("idle connection told of %d oids, want %d", len(inv), len(recs)-max)
	}
	if n := ts.srv.NumConns(); n != 2 {
		t.Fatalf("%d connections open, want 2", n)
	}
}

// The count of records is rule 1's, decided from the frame lengths before
// the frames are charged or parsed: a commit over the cap whose frames
// also repeat an oid (rule 5) or break R1–R4 (rule 4) is refused by rule
// 1, and one within the cap is still decided by the later rules.
func TestBigCommitCountedBeforeParse(t *testing.T) {
	ts := startServer(t, Config{MaxInvalid: 3}, newMemStore())
	b := ts.dial(t)
	o := b.newOIDs(4)
	if _, st := b.commit(rec(o[0], "a"), rec(o[1], "b"), rec(o[1], "c"), rec(o[2], "d")); st != 'E' {
		t.Fatalf("4 frames, a repeated oid, cap 3: %q, want E", st)
	}
	if !containsLog(ts, "4 records, more than the 3 oids") {
		t.Fatalf("not refused by the count:\n%s", ts.logs.String())
	}
	if _, st := b.commit(rec(o[0], "a"), rec(o[0], "b")); st != 'E' {
		t.Fatalf("a repeated oid within the cap: %q, want E", st)
	}
	if !containsLog(ts, "the same oid in two frames") {
		t.Fatalf("a repeat within the cap not refused by rule 5:\n%s", ts.logs.String())
	}
	if _, st := b.commit(rec(o[0], "a"), rec(o[1], "b"), rec(o[2], "c")); st != 'O' {
		t.Fatalf("3 records, cap 3: %q, want O", st)
	}
}

// Config.MaxInvalid is at most the protocol's bound (an int4 count).
func TestMaxInvalidLimit(t *testing.T) {
	if got := (Config{MaxInvalid: 1 << 40}).withDefaults().MaxInvalid; got != MaxInvalidLimit {
		t.Fatalf("MaxInvalid 2^40 → %d, want %d", got, MaxInvalidLimit)
	}
	if got := (Config{}).withDefaults().MaxInvalid; got != DefaultMaxInvalid {
		t.Fatalf("default MaxInvalid %d, want %d", got, DefaultMaxInvalid)
	}
}

// A commit of more runs of consecutive oids than an invalid set may hold
// is refused with E before anything is announced (rule 1): announced, it
// would close every other connection (I7), however recently they synced.
func TestScatteredCommitRefusedKeepsOthers(t *testing.T) {
	ts := startServer(t, Config{MaxInvalidRuns: 50}, newMemStore())
	a := ts.dial(t)
	idle := ts.dial(t)
	o := a.newOIDs(200)
	var recs [][]byte
	for i := 0; i < 120; i += 2 { // 60 runs of one oid
		recs = append(recs, rec(o[i], "y"))
	}
	if _, st := a.commit(recs...); st != 'E' {
		t.Fatalf("commit of 60 runs under a cap of 50: %q, want E", st)
	}
	if !containsLog(ts, "60 runs of consecutive oids, more than the 50") {
		t.Fatal("refusal by runs not logged with its numbers")
	}
	if inv := idle.sync(); len(inv) != 0 {
		t.Fatalf("idle connection told %d oids of a refused commit", len(inv))
	}
	if _, st := a.commit(recs[:50]...); st != 'O' { // 50 runs: at the cap
		t.Fatalf("commit of 50 runs: %q, want O", st)
	}
	if inv := idle.sync(); len(inv) != 50 {
		t.Fatalf("idle connection told %d oids, want 50", len(inv))
	}
}
