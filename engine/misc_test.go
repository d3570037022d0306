package engine

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/commit"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// TestGroupCommit: concurrent sync commits share flushes, and every
// commit acknowledged to concurrent committers survives a kill -9.
func TestGroupCommit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		t.Run("share", func(t *testing.T) { testGroupCommitShares(t, kind) })
		t.Run("kill", func(t *testing.T) {
			dir, acked := crashRun(t, kind, kv.Sync, 8, 200)
			if _, lost := reopenAfterCrash(t, kind, kv.Sync, dir, acked); len(lost) > 0 {
				t.Fatalf("%d of %d acknowledged sync commits lost by a kill -9: %v", len(lost), len(acked), lost)
			}
			t.Logf("%d acknowledged commits of 8 committers all survived", len(acked))
		})
	})
}

// testGroupCommitShares holds the first group flush until the other
// committers wait behind it: they must then share one flush, so n sync
// commits take two flushes (one flush each without group commit).
func testGroupCommitShares(t *testing.T, kind string) {
	db := newTestDB(t, kind)
	const n = 8
	first := mustAlloc(t, db, n+1)
	mustCommit(t, db, rec(0))
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	db.pipe.flushes = commit.NewGroup(func() error {
		if calls.Add(1) == 1 {
			close(started)
			<-release
		}
		return db.applyAndFlush()
	})
	var wg sync.WaitGroup
	commit := func(oid uint64) {
		defer wg.Done()
		p, err := db.Stage(context.Background(), [][]byte{rec(oid)})
		if err == nil {
			err = p.Wait(context.Background())
		}
		if err != nil {
			t.Errorf("commit oid %d: %v", oid, err)
		}
	}
	oids := make([]uint64, 0, n)
	for i := uint64(0); len(oids) < n; i++ {
		if first+i != 0 {
			oids = append(oids, first+i)
		}
	}
	wg.Add(n)
	go commit(oids[0])
	select { // the first commit leads a flush and holds it
	case <-started:
	case <-time.After(testwait.Timeout):
		close(release)
		wg.Wait()
		t.Fatal("a sync commit's Wait ran no group flush")
	}
	for _, oid := range oids[1:] {
		go commit(oid)
	}
	testwait.For(t, "the other committers to wait for a flush", func() bool { return db.pipe.flushes.Waits() == n })
	close(release)
	wg.Wait()
	if c := calls.Load(); c != 2 {
		t.Fatalf("%d sync commits, %d waiting together, ran %d flushes; want 2", n, n-1, c)
	}
	for _, oid := range oids {
		if got, err := db.Load(oid); err != nil || !bytes.Equal(got, rec(oid)) {
			t.Fatalf("oid %d after the commits: %q, %v", oid, got, err)
		}
	}
}

func TestCheckpointPolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		o := testOpts(kind)
		o.Checkpoint = CheckpointPolicy{Every: -1, LogBytes: -1, Commits: 5}
		db := openTest(t, t.TempDir(), o)
		mustAlloc(t, db, 100)
		for i := uint64(0); i < 12; i++ {
			mustCommit(t, db, rec(i))
		}
		testwait.For(t, "a checkpoint after 12 commits with Commits: 5", func() bool {
			st, _ := db.Stats()
			return st.CheckpointsSince >= 1
		})
		// Time policy.
		o.Checkpoint = CheckpointPolicy{Every: 50 * time.Millisecond, KeepLogs: true}
		db2 := openTest(t, t.TempDir(), o)
		testwait.For(t, "a timed checkpoint", func() bool {
			st, _ := db2.Stats()
			return st.CheckpointsSince > 0
		})
		// Manual.
		if err := db.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCheckpointLogged: every checkpoint leaves a debug line with its
// duration and the commits and log bytes since the one before, so that a
// stall can be matched with a checkpoint.
func TestCheckpointLogged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		var buf testlog.Buffer
		o := testOpts(kind)
		o.Checkpoint = CheckpointPolicy{Manual: true}
		o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		db := openTest(t, t.TempDir(), o)
		mustAlloc(t, db, 10)
		for i := uint64(0); i < 3; i++ {
			mustCommit(t, db, rec(i))
		}
		if err := db.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		var line string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, `msg="engine: checkpoint"`) {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, " took=") || !strings.Contains(line, " commits_since_last=3 ") ||
			strings.Contains(line, " bytes_since_last=0") {
			t.Fatalf("checkpoint log line %q; log:\n%s", line, buf.String())
		}
	})
}

func TestUncleanShutdownValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		db := openTest(t, dir, testOpts(kind))
		mustAlloc(t, db, 5)
		mustCommit(t, db, rec(0, 1), rec(1), rec(2))
		db.Close()
		// Simulate a crash: in_use left set, a stale queue entry for 1.
		store, _, err := backend.Open(kv.Options{Dir: dir, Buckets: Buckets(false, 0)}, kind)
		if err != nil {
			t.Fatal(err)
		}
		err = kv.Update(context.Background(), store, kv.Sync, func(tx kv.Txn) error {
			if err := tx.Put(BucketMeta, []byte(MetaInUse), []byte("1")); err != nil {
				return err
			}
			return tx.Put(BucketGarbage, record.OIDBytes(1), int8Bytes(0))
		})
		store.Close()
		if err != nil {
			t.Fatal(err)
		}
		o := testOpts(kind)
		o.ValidateGarbage = true
		db = openTest(t, dir, o)
		if !db.UncleanShutdown() {
			t.Fatal("unclean shutdown not noticed")
		}
		if g := sortedKeys(dump(t, db, BucketGarbage)); !slices.Equal(g, []uint64{2}) {
			t.Fatalf("queue after validation %v", g)
		}
		verifyInvariants(t, db)
	})
}

// TestRefcountModel: random commits (re-parenting, deletions, duplicates,
// self refs) interleaved with collector passes keep the invariants.
func TestRefcountModel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		r := rand.New(rand.NewPCG(3, 4))
		o := testOpts(kind)
		o.GCGrace = -1
		db := openTest(t, t.TempDir(), o)
		ctx := context.Background()
		mustAlloc(t, db, 200)
		mustCommit(t, db, rec(0))
		refused := 0
		for step := 0; step < 150; step++ {
			existing := sortedKeys(dump(t, db, BucketObjects))
			var recs [][]byte
			seen := map[uint64]bool{}
			for k := 1 + r.IntN(4); k > 0; k-- {
				oid := uint64(r.IntN(200))
				if seen[oid] {
					continue
				}
				seen[oid] = true
				var refs []uint64
				for j := r.IntN(5); j > 0; j-- {
					switch r.IntN(8) {
					case 0:
						refs = append(refs, uint64(r.IntN(200))) // maybe dangling
					case 1:
						refs = append(refs, oid, oid) // self ref, duplicate
					default:
						refs = append(refs, existing[r.IntN(len(existing))])
					}
				}
				recs = append(recs, rec(oid, refs...))
			}
			_, err := db.Commit(ctx, recs)
			if err != nil && !isDangling(err) {
				t.Fatal(err)
			}
			if err != nil {
				refused++
			}
			if step%10 == 0 {
				if _, err := db.CollectGarbage(ctx, 5); err != nil {
					t.Fatal(err)
				}
			}
			verifyInvariants(t, db)
			if t.Failed() {
				t.Fatalf("step %d", step)
			}
		}
		if refused > 100 {
			t.Fatalf("%d of 150 commits refused: the model tests little", refused)
		}
		t.Logf("refused %d, objects %d", refused, len(dump(t, db, BucketObjects)))
	})
}

func isDangling(err error) bool { return err != nil && errorsIs(err, ErrDangling) }
