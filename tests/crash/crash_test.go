//go:build crash

// Package crash is the kill -9 harness (FORMAT.md §4, PROTOCOL.md C37): a
// real durusbdb server process serves 8 committing clients, is killed with
// SIGKILL at a random moment, restarted, and every acknowledged commit must
// be there with its exact bytes, every commit all-or-nothing. Run it with
// scripts/crash.sh (CI: short) or by hand for longer:
//
//	go test -tags 'crash bdb' ./tests/crash -rounds 500 -v
package crash

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/wire"
)

var (
	rounds      = flag.Int("rounds", 50, "kill -9 rounds per backend (classic workload)")
	churnRounds = flag.Int("churn-rounds", 100, "kill -9 rounds per backend (garbage-churn workload)")
	clients     = flag.Int("clients", 8, "committing clients")
	checkEvery  = flag.Int("check-every", 10, "stop cleanly and run check + db_verify every N rounds (classic workload)")
	tags        = flag.String("build-tags", os.Getenv("DURUSBDB_TAGS"), "build tags for the server binary")
	only        = flag.String("backend", "", "run only this backend (default: every compiled one)")
)

// workload is one kind of kill -9 run.
type workload struct {
	name string
	// serveArgs are added to the server's command line.
	serveArgs []string
	// killAfter draws how long the clients work before the kill.
	killAfter func(*rand.Rand) time.Duration
	// churn adds one client committing transactions of 5,000-20,000 new,
	// unreferenced objects, so the collector deletes under every kill.
	churn bool
	// quick: never stop cleanly between kills; instead, every checkEvery
	// rounds, a copy of the killed directory must pass libdb's own
	// db_recover and db_verify, and durusbdb check after a restart.
	quick bool
	// killRecovery: in about a third of the rounds the restarted server is
	// killed again within its first 300 ms (recovery, open, first commits)
	// and started once more.
	killRecovery bool
	// backup: in about a quarter of the rounds a `durusbdb backup` runs
	// against the server and is killed with it.
	backup bool
}

func classic() workload {
	return workload{
		name: "classic",
		// Frequent checkpoints and log removal, so kills land during them too.
		serveArgs: []string{"--gc-grace", "0s", "--checkpoint-interval", "50ms"},
		killAfter: func(r *rand.Rand) time.Duration { return time.Duration(50+r.IntN(700)) * time.Millisecond },
	}
}

// churn is the recipe of the issue that lost Berkeley DB directories: a
// 1 s collector grace, big garbage transactions, kills 0.5-3 s in, quick
// restarts, kills during recovery, and default checkpoint settings (so
// most rounds end before any checkpoint of their own).
func churn() workload {
	return workload{
		name:         "churn",
		serveArgs:    []string{"--gc-grace", "1s"},
		killAfter:    func(r *rand.Rand) time.Duration { return time.Duration(500+r.IntN(2500)) * time.Millisecond },
		churn:        true,
		quick:        true,
		killRecovery: true,
		backup:       true,
	}
}

func TestCrash(t *testing.T) {
	var bins proc.Builder
	defer bins.Close()
	bin, err := bins.Build(context.Background(), "github.com/durusbdb/durusbdb/cmd/durusbdb", *tags)
	if err != nil {
		t.Fatalf("build server: %v", err)
	}
	for _, b := range backend.Compiled() {
		if *only != "" && b != *only {
			continue
		}
		if *rounds > 0 {
			t.Run(b+"/classic", func(t *testing.T) { runBackend(t, bin, b, classic(), *rounds) })
		}
		if *churnRounds > 0 {
			t.Run(b+"/churn", func(t *testing.T) { runBackend(t, bin, b, churn(), *churnRounds) })
		}
	}
}

// clientState is what one client has attempted and had acknowledged.
type clientState struct {
	head     uint64         // oid of the client's head object
	xoid     map[int]uint64 // seq -> oid of the chain object X_seq
	acked    int            // highest seq answered O
	stored   int            // seq found in the database at the last verification
	attempts int            // highest seq sent
	refused  string         // set when a commit got a status other than O
}

func xdata(c, seq int) []byte {
	// Deterministic, distinct bytes; sizes vary from 16 B to ~1.5 KB.
	n := 16 + (c*7919+seq*104729)%1500
	b := make([]byte, n)
	s := uint64(c)<<32 | uint64(seq)
	for i := range b {
		s = s*6364136223846793005 + 1442695040888963407
		b[i] = byte(s >> 56)
	}
	return b
}

func headData(seq int) []byte { return binary.BigEndian.AppendUint64([]byte("head"), uint64(seq)) }

// server is one durusbdb serve process on a 127.0.0.1 port.
type server struct {
	*proc.Process
	addr string
}

// launch starts a server process, its output appended to logPath, without
// waiting for it to listen; it is killed at cleanup if still running. The
// server picks its own port (--port 0): its address is known once it
// serves (start).
func launch(t *testing.T, bin, dir, kind string, w workload, logPath string) *server {
	t.Helper()
	args := append([]string{bin, "serve", "--dir", dir, "--create", "--backend", kind,
		"--host", "127.0.0.1", "--port", "0"}, w.serveArgs...)
	p, err := proc.Start(proc.Options{LogPath: logPath}, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(30 * time.Second) })
	return &server{Process: p}
}

// start launches a server and waits until it accepts connections.
func start(t *testing.T, bin, dir, kind string, w workload, logPath string) *server {
	t.Helper()
	s := launch(t, bin, dir, kind, w, logPath)
	addr, err := s.ServingAddr(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = addr
	if err := s.WaitReady(s.addr, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func (s *server) quit(t *testing.T) {
	t.Helper()
	if err := s.Quit(s.addr, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

// tally is what runBackend counts over its rounds.
type tally struct {
	acked, lost, applied, garbage, recoveryKills, backupKills, maxLogs int
}

func runBackend(t *testing.T, bin, kind string, w workload, nrounds int) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "server.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("end of the server log:\n%s", proc.Tail(b, 40))
		}
	})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	srv := start(t, bin, dir, kind, w, logPath)
	states := setupStates(t, srv.addr)
	var n tally
	for round := 1; round <= nrounds; round++ {
		workAndKill(t, bin, dir, srv, w, states, rng, logPath, &n)
		if w.quick && (round%*checkEvery == 0 || round == nrounds) && kind == backend.BDB {
			libdbRecoverCopy(t, dir)
		}
		if w.killRecovery && rng.IntN(3) == 0 {
			// Kill the restarted server early: during recovery, the
			// engine's open, or its first moments of serving.
			s2 := launch(t, bin, dir, kind, w, logPath)
			// A random moment of the restart: a deliberate delay.
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			s2.kill(t)
			n.recoveryKills++
		}

		srv = start(t, bin, dir, kind, w, logPath)
		lost, applied := verify(t, srv.addr, states)
		// Counted once the server answered loads (a connection may be
		// accepted by the kernel before the open, with its recovery and
		// checkpoint, is done).
		if logs, _ := filepath.Glob(filepath.Join(dir, "log.*")); len(logs) > n.maxLogs {
			n.maxLogs = len(logs)
		}
		n.lost += lost
		n.applied += applied
		if lost > 0 {
			t.Fatalf("round %d: %d acknowledged commits lost (server log %s)", round, lost, logPath)
		}
		if round%25 == 0 {
			fmt.Printf("CRASH-PROGRESS %s %s round=%d acknowledged=%d garbage_txns=%d recovery_kills=%d backup_kills=%d lost=%d max_logs=%d\n",
				kind, w.name, round, n.acked, n.garbage, n.recoveryKills, n.backupKills, n.lost, n.maxLogs)
		}
		if !w.quick && (round%*checkEvery == 0 || round == nrounds) {
			srv.quit(t)
			offline(t, bin, dir, kind)
			srv = start(t, bin, dir, kind, w, logPath)
		}
	}
	srv.quit(t)
	offline(t, bin, dir, kind)
	// Logs do not pile up across quick restarts: a recovered directory is
	// checkpointed at open and its unneeded logs removed (before the fix,
	// 66 rounds had left 550 files of 10 MB).
	if n.maxLogs > 20 {
		t.Errorf("%d Berkeley DB log files after a restart: logs pile up across crashes", n.maxLogs)
	}
	t.Logf("%s %s: %d rounds, %d commits acknowledged, %d garbage transactions acknowledged, %d applied-unacknowledged found complete, %d kills during recovery, %d kills during backup, %d lost, 0 failed restarts",
		kind, w.name, nrounds, n.acked, n.garbage, n.applied, n.recoveryKills, n.backupKills, n.lost)
	fmt.Printf("CRASH %s %s rounds=%d acknowledged=%d garbage_txns=%d recovery_kills=%d backup_kills=%d lost=%d failed_restarts=0\n",
		kind, w.name, nrounds, n.acked, n.garbage, n.recoveryKills, n.backupKills, n.lost)
}

// setupStates commits the root (oid 0), which references every client's
// head, and returns the clients' states.
func setupStates(t *testing.T, addr string) []*clientState {
	t.Helper()
	c, err := wire.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	oids, err := c.NewOIDs(1 + *clients)
	if err != nil || oids[0] != 0 {
		t.Fatalf("first oids %v, %v", oids, err)
	}
	states := make([]*clientState, *clients)
	recs := [][]byte{record.Build(0, []byte("root"), oids[1:]...)}
	for i := range states {
		states[i] = &clientState{head: oids[1+i], xoid: map[int]uint64{}}
		recs = append(recs, record.Build(oids[1+i], headData(0)))
	}
	if _, st, err := c.Commit(recs); err != nil || st != 'O' {
		t.Fatalf("set-up commit: %q %v", st, err)
	}
	return states
}

// workAndKill runs the clients (and the workload's extra loop, and maybe a
// backup) against srv for a random time, kills srv with SIGKILL (and the
// backup with it), waits for the clients and adds what they had
// acknowledged to n.
func workAndKill(t *testing.T, bin, dir string, srv *server, w workload, states []*clientState, rng *rand.Rand, logPath string, n *tally) {
	t.Helper()
	var acked, garbage atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, st := range states {
		wg.Add(1)
		go func() { defer wg.Done(); commitLoop(ctx, srv.addr, i, st, &acked) }()
	}
	if !w.churn {
		wg.Add(1)
		go func() { defer wg.Done(); packLoop(ctx, srv.addr) }()
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); garbageLoop(ctx, srv.addr, rng.Uint64(), &garbage) }()
	}
	var bk *proc.Process
	bkOut := filepath.Join(t.TempDir(), "backup")
	if w.backup && rng.IntN(4) == 0 {
		var err error
		if bk, err = proc.Start(proc.Options{LogPath: logPath}, bin, "backup", "--dir", dir, bkOut); err != nil {
			t.Fatal(err)
		}
	}
	// The kill lands at a random moment: a deliberate delay, not a wait.
	time.Sleep(w.killAfter(rng))
	srv.kill(t)
	if bk != nil {
		if err := bk.Kill(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		n.backupKills++
		// What a killed backup left (its output or its staging directory
		// beside it) is not the database's.
		os.RemoveAll(filepath.Dir(bkOut))
	}
	cancel()
	wg.Wait()
	n.acked += int(acked.Load())
	n.garbage += int(garbage.Load())
	for _, st := range states {
		if st.refused != "" {
			t.Fatal(st.refused)
		}
	}
}

// garbageLoop commits transactions of 5,000-20,000 new objects that
// nothing references, for the collector to delete.
func garbageLoop(ctx context.Context, addr string, seed uint64, acked *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	c, err := wire.Dial(addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	for ctx.Err() == nil {
		n := 5000 + rng.IntN(15001)
		var oids []uint64
		for len(oids) < n {
			more, err := c.NewOIDs(min(255, n-len(oids))) // M asks for at most 255
			if err != nil {
				return
			}
			oids = append(oids, more...)
		}
		recs := make([][]byte, n)
		for i, o := range oids {
			recs[i] = record.Build(o, []byte("garbage, unreferenced"))
		}
		if _, st, err := c.Commit(recs); err != nil || st != 'O' {
			return
		}
		acked.Add(1)
	}
}

// libdbRecoverCopy copies the killed Berkeley DB directory (no process has
// it open) and runs libdb's own db_recover and db_verify on the copy: they
// must succeed on every directory durusbdb leaves behind.
func libdbRecoverCopy(t *testing.T, dir string) {
	t.Helper()
	cp := t.TempDir()
	out, err := exec.Command("cp", "-a", dir+"/.", cp).CombinedOutput()
	if err != nil {
		t.Fatalf("copy %s: %v\n%s", dir, err, out)
	}
	defer os.RemoveAll(cp)
	if out, err := exec.Command("db5.3_recover", "-h", cp).CombinedOutput(); err != nil {
		t.Fatalf("db5.3_recover on a copy of the killed directory: %v\n%s(directory kept in %s)", err, out, keep(t, dir))
	}
	verifyFiles(t, cp)
}

// commitLoop commits X_seq (chained to X_seq-1) and the new head in one
// transaction, plus now and then an unreferenced object for the collector.
func commitLoop(ctx context.Context, addr string, ci int, st *clientState, acked *atomic.Int64) {
	c, err := wire.Dial(addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	var pool []uint64
	for ctx.Err() == nil {
		if len(pool) < 2 {
			more, err := c.NewOIDs(32)
			if err != nil {
				return
			}
			pool = append(pool, more...)
		}
		seq := st.attempts + 1
		x := pool[0]
		pool = pool[1:]
		var refs []uint64
		if prev, ok := st.xoid[seq-1]; ok {
			refs = append(refs, prev)
		}
		st.xoid[seq] = x
		st.attempts = seq
		recs := [][]byte{record.Build(x, xdata(ci, seq), refs...), record.Build(st.head, headData(seq), x)}
		if seq%5 == 0 {
			g := pool[0]
			pool = pool[1:]
			recs = append(recs, record.Build(g, []byte("garbage")))
		}
		_, status, err := c.Commit(recs)
		if err != nil {
			return
		}
		if status != 'O' {
			st.refused = fmt.Sprintf("client %d seq %d: commit answered %q, want O", ci, seq, status)
			return
		}
		st.acked = seq
		acked.Add(1)
	}
}

// packLoop starts full collections, so kills also land during them.
func packLoop(ctx context.Context, addr string) {
	c, err := wire.Dial(addr, 5*time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	for ctx.Err() == nil {
		if c.Pack() != nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// verify checks every client's head and chain after a restart; it returns
// the number of acknowledged commits missing and of unacknowledged commits
// found applied (complete).
func verify(t *testing.T, addr string, states []*clientState) (lost, applied int) {
	t.Helper()
	c, err := wire.Dial(addr, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for ci, st := range states {
		status, rec, err := c.Load(st.head)
		if err != nil || status != 'O' {
			t.Fatalf("client %d head oid %d: status %q err %v", ci, st.head, status, err)
		}
		r, err := record.ParseFor(st.head, rec)
		if err != nil || len(r.Data) != 12 || !bytes.HasPrefix(r.Data, []byte("head")) {
			t.Fatalf("client %d head record %x: %v", ci, rec, err)
		}
		seq := int(binary.BigEndian.Uint64(r.Data[4:]))
		if seq > st.attempts {
			t.Fatalf("client %d: stored seq %d was never sent (last sent %d)", ci, seq, st.attempts)
		}
		if seq < st.acked {
			lost += st.acked - seq
			t.Errorf("client %d: acknowledged seq %d, database has %d", ci, st.acked, seq)
		}
		if seq > st.acked {
			applied += seq - st.acked
		}
		// Every chain object from the last verified point to seq, exact bytes.
		for k := max(st.stored, 1); k <= seq; k++ {
			oid := st.xoid[k]
			status, rec, err := c.Load(oid)
			var refs []uint64
			if prev, ok := st.xoid[k-1]; ok {
				refs = append(refs, prev)
			}
			if err != nil || status != 'O' || !bytes.Equal(rec, record.Build(oid, xdata(ci, k), refs...)) {
				t.Fatalf("client %d seq %d oid %d: status %q err %v, record differs or missing", ci, k, oid, status, err)
			}
		}
		// Commits after seq were not applied: forget them so oids/seqs restart cleanly.
		for k := seq + 1; k <= st.attempts; k++ {
			delete(st.xoid, k)
		}
		st.stored, st.acked, st.attempts = seq, seq, seq
	}
	return lost, applied
}

// offline runs `durusbdb check` and, for Berkeley DB, db_verify on every file.
// A full collection the server's stop interrupted in its sweep leaves
// counts above the in-degree of garbage it had not reached yet (check
// says so in a note, FORMAT.md §3 meta full): the documented remedy,
// `gc --full`, must then make the check clean.
func offline(t *testing.T, bin, dir, kind string) {
	t.Helper()
	out, err := exec.Command(bin, "check", "--dir", dir).CombinedOutput()
	if err != nil && strings.Contains(string(out), "did not finish") {
		t.Logf("check after a stop that interrupted a full collection:\n%s", out)
		if gout, gerr := exec.Command(bin, "gc", "--dir", dir, "--full").CombinedOutput(); gerr != nil {
			t.Fatalf("durusbdb gc --full after an interrupted full collection: %v\n%s(directory kept in %s)", gerr, gout, keep(t, dir))
		}
		out, err = exec.Command(bin, "check", "--dir", dir).CombinedOutput()
	}
	if err != nil {
		t.Fatalf("durusbdb check: %v\n%s(directory kept in %s)", err, out, keep(t, dir))
	}
	if kind != backend.BDB {
		return
	}
	verifyFiles(t, dir)
}

// keep copies dir, which the test is about to fail on, to a directory that
// outlives the test, and returns its name.
func keep(t *testing.T, dir string) string {
	dst, err := os.MkdirTemp("", "durusbdb-crash-failed-*")
	if err != nil {
		return "nowhere: " + err.Error()
	}
	if out, err := exec.Command("cp", "-a", dir+"/.", dst).CombinedOutput(); err != nil {
		return fmt.Sprintf("nowhere: %v %s", err, out)
	}
	return dst
}

// verifyFiles runs db5.3_verify on every database file of dir.
func verifyFiles(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.db"))
	if len(files) != 4 {
		t.Fatalf("want 4 database files, found %v", files)
	}
	for _, f := range files {
		out, err := exec.Command("db5.3_verify", "-h", dir, filepath.Base(f)).CombinedOutput()
		// db_verify exits 0 and prints "BDB5105 Verification of X
		// succeeded." and nothing else about the file. On a large file its
		// own private environment may run short of mutexes (BDB2034
		// "unable to allocate memory for mutex; resize mutex region"):
		// that is the tool's cache, not the file, and is allowed.
		var other []string
		ok := false
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			switch {
			case strings.Contains(l, "Verification of") && strings.Contains(l, "succeeded"):
				ok = true
			case strings.Contains(l, "BDB2034 "):
			default:
				other = append(other, l)
			}
		}
		if err != nil || !ok || len(other) > 0 {
			t.Fatalf("db5.3_verify %s: %v\n%s", f, err, out)
		}
	}
}
