package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestStress runs committers, loaders, the background collector and
// repeated full collections together, then checks every invariant.
func TestStress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		o := testOpts(kind)
		o.GCGrace = -1
		o.GC = GCPolicy{Mode: GCContinuous, Rate: 100000, Batch: 32}
		var removed atomic.Int64
		o.OnRemove = func(oids []uint64) { removed.Add(int64(len(oids))) }
		db := openTest(t, t.TempDir(), o)
		ctx := context.Background()
		mustAlloc(t, db, 1)
		mustCommit(t, db, rec(0))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		var commits, refused atomic.Int64
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(w), 1))
				var mine []uint64
				for i := 0; i < 300; i++ {
					select {
					case <-stop:
						return
					default:
					}
					first, err := db.AllocOIDs(3)
					if err != nil {
						t.Error(err)
						return
					}
					recs := [][]byte{rec(first, first+1), rec(first+1, first+2), rec(first + 2)}
					if len(mine) > 0 && r.IntN(2) == 0 {
						// Link something older (may be collected: conflict).
						recs[2] = rec(first+2, mine[r.IntN(len(mine))])
					}
					if r.IntN(3) == 0 {
						recs = append(recs, rec(0, first)) // the root holds the newest chain
					}
					p, err := db.Commit(ctx, recs)
					if errors.Is(err, ErrDangling) {
						refused.Add(1)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					if err := p.Wait(ctx); err != nil {
						t.Error(err)
						return
					}
					commits.Add(1)
					mine = append(mine, first, first+1)
				}
			}()
		}
		var lwg sync.WaitGroup
		lwg.Add(1)
		go func() { // loaders, until the others are done
			defer lwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h := db.AllocCursor()
				if h > 0 {
					if _, err := db.Load(uint64(rand.IntN(int(h)))); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
						return
					}
				}
			}
		}()
		wg.Add(1)
		go func() { // full collections
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if _, err := db.FullCollect(ctx); err != nil && !errors.Is(err, ErrCollecting) {
					t.Error(err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
			close(stop)
			lwg.Wait()
		case <-time.After(120 * time.Second):
			close(stop)
			t.Fatal("stress test hung (deadlock?)")
		}
		// Let the collector drain, then check.
		if _, err := db.CollectGarbageGrace(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
		rep, err := db.Check(ctx, false)
		if err != nil || !rep.OK() {
			t.Fatalf("check: %v %v", err, rep.Problems)
		}
		verifyInvariants(t, db)
		t.Logf("%s: %d commits, %d refused, %d removed, %d objects left", kind, commits.Load(), refused.Load(), removed.Load(), rep.Objects)
	})
}

// TestCrashDurability kills (SIGKILL) a child committing in sync mode and
// checks that every acknowledged commit survives, and the database is
// consistent and marked unclean.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv("ENGINE_CRASH_CHILD_DIR"); dir != "" {
		crashChild(dir, os.Getenv("ENGINE_CRASH_CHILD_KIND"))
		return
	}
	forEachBackend(t, func(t *testing.T, kind string) {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$")
		cmd.Env = append(os.Environ(), "ENGINE_CRASH_CHILD_DIR="+dir, "ENGINE_CRASH_CHILD_KIND="+kind)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []uint64
		sc := bufio.NewScanner(out)
		for sc.Scan() && len(acked) < 200 {
			n, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				continue
			}
			acked = append(acked, n)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if len(acked) < 200 {
			t.Fatalf("child acknowledged only %d commits", len(acked))
		}
		db := openTest(t, dir, testOpts(kind))
		if !db.UncleanShutdown() {
			t.Error("in_use not found after SIGKILL")
		}
		for _, oid := range acked {
			if _, err := db.Load(oid); err != nil {
				t.Fatalf("acknowledged oid %d lost: %v", oid, err)
			}
		}
		if h := db.AllocCursor(); h <= acked[len(acked)-1] {
			t.Fatalf("cursor %d not above acknowledged oid %d", h, acked[len(acked)-1])
		}
		rep, err := db.Check(context.Background(), false)
		if err != nil || !rep.OK() {
			t.Fatalf("check after crash: %v %v", err, rep.Problems)
		}
	})
}

func crashChild(dir, kind string) {
	o := testOpts(kind)
	db, err := Open(context.Background(), dir, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	if _, err := db.AllocOIDs(1); err != nil {
		os.Exit(2)
	}
	root := []uint64{}
	for i := 0; ; i++ {
		oid, err := db.AllocOIDs(1)
		if err != nil {
			os.Exit(2)
		}
		root = append(root, oid)
		p, err := db.Commit(ctx, [][]byte{rec(oid), rec(0, root...)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := p.Wait(ctx); err != nil {
			os.Exit(2)
		}
		fmt.Println(oid)
	}
}
