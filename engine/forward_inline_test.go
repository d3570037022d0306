package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"
)

// inlineReplica is a replica's DB whose change follower exists but never
// runs (no changesLoop): only a waiter's own read of the change table
// (readInline) can report entries. It records what is reported.
func inlineReplica(t *testing.T) (*DB, *changeTable, *[][]uint64) {
	t.Helper()
	db := &DB{log: slog.New(slog.NewTextHandler(io.Discard, nil)), cache: newRecCache(1 << 20)}
	tbl := &changeTable{m: map[string][]byte{}}
	db.store = changeStore{t: tbl}
	db.changes.kick = make(chan struct{}, 1)
	var got [][]uint64
	db.opts.OnReplicated = func(oids []uint64) { got = append(got, slices.Clone(oids)) }
	f := &follower{stop: make(chan struct{}), done: make(chan struct{})}
	db.changes.fol = f
	db.changes.active.Store(f)
	db.changes.follow = 1
	db.changes.reported.Store(1)
	db.changes.started.Store(1)
	return db, tbl, &got
}

// putChange writes change entry seq storing oids, as a master's run would.
func putChange(tbl *changeTable, seq uint64, oids ...uint64) {
	v := int8Bytes(uint64(time.Now().UnixNano()))
	for _, o := range oids {
		v = binary.BigEndian.AppendUint64(v, o)
	}
	_ = tbl.Put(BucketChanges, int8Bytes(seq), v)
}

// TestWaitReplicatedReadsInline: a forwarded commit's wait reads the
// change table itself when no read is running, instead of kicking the
// follower and sleeping until it has read (two goroutine hand-offs per
// forwarded commit): with a follower that never runs, the wait still
// ends, the entries are reported in order, and no read was asked of the
// follower. The phase-1 wait (SyncFollowerFrom) does the same.
func TestWaitReplicatedReadsInline(t *testing.T) {
	db, tbl, got := inlineReplica(t)
	putChange(tbl, 1, 10, 11)
	putChange(tbl, 2, 12)
	err := db.WaitReplicated(context.Background(), Token{Change: 2}, 2*time.Second)
	if err != nil {
		t.Fatalf("the wait did not read the table itself: %v", err)
	}
	if want := [][]uint64{{10, 11}, {12}}; !slices.EqualFunc(*got, want, slices.Equal) {
		t.Fatalf("reported %v, want %v", *got, want)
	}
	if len(db.changes.kick) != 0 {
		t.Fatal("the follower was asked for a read")
	}
	if r := db.ChangesReported(); r != 3 {
		t.Fatalf("reported up to %d, want 3", r)
	}

	putChange(tbl, 3, 13)
	mark := db.FollowerMark()
	db.SyncFollowerFrom(context.Background(), mark, 2*time.Second)
	if db.changes.passes.Load() < mark+1 || db.ChangesReported() != 4 {
		t.Fatalf("phase 1's wait: %d reads ended, reported up to %d; want a read after mark %d and 4",
			db.changes.passes.Load(), db.ChangesReported(), mark)
	}
	if len(db.changes.kick) != 0 {
		t.Fatal("phase 1's wait asked the follower for a read")
	}
}

// TestReadInlineStopsWithFollower: once the follower is told to stop (a
// promotion or a reset), a waiter reads nothing itself — not even the
// rest of a read it began — and the follower, which reads up to the
// promoted master's first entry, is asked instead.
func TestReadInlineStopsWithFollower(t *testing.T) {
	db, tbl, got := inlineReplica(t)
	putChange(tbl, 1, 10)
	putChange(tbl, 2, 11)
	db.opts.OnReplicated = func(oids []uint64) {
		*got = append(*got, slices.Clone(oids))
		db.stopFollowing(2) // told to stop while its read reports entry 1
	}
	err := db.WaitReplicated(context.Background(), Token{Change: 2}, 100*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("wait: %v, want a timeout (only the stopped follower may read on)", err)
	}
	if want := [][]uint64{{10}}; !slices.EqualFunc(*got, want, slices.Equal) {
		t.Fatalf("reported %v, want only %v", *got, want)
	}
	if len(db.changes.kick) != 1 {
		t.Fatal("the follower was not asked to read")
	}
	if db.readInline() {
		t.Fatal("read inline after the follower was told to stop")
	}
}
