//go:build bdb

package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestMigrateKilled: `durusbdb migrate` killed with SIGKILL at random
// moments never leaves a directory that serves partial data as if it were
// whole: the next serve either refuses it with an error that says how to
// finish (run migrate again), or serves it after a completed import. Then
// migrate run again completes, every record of the source is served byte
// for byte, and `durusbdb check` passes. Both backends.
func TestMigrateKilled(t *testing.T) {
	bin := durusbdbBin(t)
	src := filepath.Join(t.TempDir(), "app.durus")
	const n = 120_000
	rec := func(oid uint64) []byte {
		var refs []uint64
		if oid > 0 {
			refs = append(refs, oid-1) // a chain: every record reachable from the root
		}
		return record.Build(oid, []byte(fmt.Sprintf("object %d %s", oid, strings.Repeat("x", int(oid%200)))), refs...)
	}
	root := record.Build(0, []byte("root"), n-1)
	_, err := filestorage.WriteShelf(src, filestorage.WriteOptions{}, func(yield func(uint64, []byte) error) error {
		if err := yield(0, root); err != nil {
			return err
		}
		for oid := uint64(1); oid < n; oid++ {
			if err := yield(oid, rec(oid)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for _, kind := range []string{"bdb", "leveldb"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			for round := 0; round < 4; round++ {
				killMigrate(t, bin, dir, kind, src, round, rng)
			}
			out, err := exec.Command(bin, "migrate", "--dir", dir, "--create", "--backend", kind, "--force", src).CombinedOutput()
			if err != nil {
				t.Fatalf("migrate after kills: %v\n%s", err, out)
			}
			if out, err := exec.Command(bin, "check", "--dir", dir).CombinedOutput(); err != nil {
				t.Fatalf("check after a completed migrate: %v\n%s", err, out)
			}
			srv := startServer(t, dir, kind)
			c, err := wire.Dial(srv.addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if st, got, err := c.Load(0); err != nil || st != wire.StatusOK || !bytes.Equal(got, root) {
				t.Fatalf("root after migrate: %q %v", st, err)
			}
			for i := 0; i < 2000; i++ {
				oid := 1 + uint64(rng.IntN(n-1))
				if st, got, err := c.Load(oid); err != nil || st != wire.StatusOK || !bytes.Equal(got, rec(oid)) {
					t.Fatalf("oid %d after migrate: %q %v", oid, st, err)
				}
			}
			srv.quit(t)
		})
	}
}

// killMigrate runs one round of TestMigrateKilled: migrate src into dir,
// SIGKILL it at a random moment, and check what serve makes of dir.
func killMigrate(t *testing.T, bin, dir, kind, src string, round int, rng *rand.Rand) {
	t.Helper()
	mig := proc.StartT(t, proc.Options{}, bin, "migrate", "--dir", dir, "--create", "--backend", kind, "--force", src)
	// The kill lands at a random moment: a deliberate delay, not a wait.
	kill := time.NewTimer(time.Duration(20+rng.IntN(600)) * time.Millisecond)
	select {
	case <-kill.C:
		if err := mig.Kill(30 * time.Second); err != nil {
			t.Fatal(err)
		}
	case <-mig.Done():
		kill.Stop()
		if err := mig.Err(); err != nil {
			t.Fatalf("round %d: migrate: %v\n%s", round, err, mig.Log())
		}
	}
	// What a server makes of the directory now.
	sout, err := serveOnce(t, bin, dir)
	switch {
	case strings.Contains(sout, "msg=serving"):
		// It served: the import must be whole (migrate finished before
		// the kill).
		if !finished(t, bin, dir) {
			t.Fatalf("round %d: serve accepted a partial import:\n%s", round, sout)
		}
		t.Logf("round %d: migrate had finished; served", round)
	case err != nil && strings.Contains(sout, "no database in this directory"):
		t.Logf("round %d: killed before it created the database", round)
	case err != nil && strings.Contains(sout, "durusbdb migrate"):
		t.Logf("round %d: serve refused the interrupted import: %s", round, lastLine(sout))
	default:
		t.Fatalf("round %d: after a killed migrate, serve neither served nor said to run migrate again (%v):\n%s\nmigrate said:\n%s", round, err, sout, mig.Log())
	}
}

// serveOnce runs `durusbdb serve` on dir until it logs that it serves or
// exits (within a minute), then stops it with SIGINT, and returns its
// output and exit error.
func serveOnce(t *testing.T, bin, dir string) (string, error) {
	t.Helper()
	p := proc.StartT(t, proc.Options{}, bin, "serve", "--dir", dir, "--port", "0", "--host", "127.0.0.1")
	err := p.WaitUntil(time.Minute, "serve", func() bool { return strings.Contains(p.Log(), "msg=serving") })
	if err != nil && !errors.Is(err, proc.ErrExited) {
		t.Fatal(err)
	}
	p.Signal(os.Interrupt)
	if err := p.Wait(30 * time.Second); errors.Is(err, proc.ErrTimeout) {
		t.Fatal(err)
	}
	// The output is complete only once the process has been waited for.
	return p.Log(), p.Err()
}

// finished reports whether `durusbdb stats` counts every record of the
// source of TestMigrateKilled.
func finished(t *testing.T, bin, dir string) bool {
	out, err := exec.Command(bin, "stats", "--dir", dir, "--json").Output()
	return err == nil && bytes.Contains(out, []byte(`"objects": 120000`))
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}
