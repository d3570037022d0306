//go:build bdb

package recovery

// Tests with real processes: bin/durusbdb is built with -tags bdb into a
// temporary directory and run as `durusbdb serve`; clients commit through
// internal/wire.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/wire"
	"github.com/durusbdb/durusbdb/kv"
)

// bins builds the server binary once per test run.
var bins proc.Builder

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Close()
	os.Exit(code)
}

// durusbdbBin builds the server binary (with -tags bdb) once per test run.
func durusbdbBin(t *testing.T) string {
	t.Helper()
	bin, err := bins.Build(context.Background(), "github.com/durusbdb/durusbdb/cmd/durusbdb", "bdb")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// server is a `durusbdb serve` process on a 127.0.0.1 port.
type server struct {
	*proc.Process
	addr string
}

// startServer serves dir (created if need be) with backend kind and extra
// flags, and waits until it accepts connections; it is killed at cleanup.
func startServer(t *testing.T, dir, kind string, extra ...string) *server {
	t.Helper()
	bin := durusbdbBin(t)
	// --port 0: the server binds a port of its own choosing and names it
	// in its log, so no other process can take it first.
	args := append([]string{bin, "serve", "--dir", dir, "--create", "--backend", kind, "--host", "127.0.0.1", "--port", "0", "--cache-size", "16MiB"}, extra...)
	s := &server{Process: proc.StartT(t, proc.Options{}, args...)}
	addr, err := s.ServingAddr(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = addr
	if err := s.WaitReady(addr, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

// quit stops the server with Q and wants status 0 within 20 s.
func (s *server) quit(t *testing.T) {
	t.Helper()
	if err := s.Quit(s.addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// kill ends the server with SIGKILL.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.Kill(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// logText returns the server's log so far.
func (s *server) logText() string { return s.Log() }

// ack is one acknowledged commit: the chain object written and when.
type ack struct {
	oid uint64
	rec []byte
	at  time.Time
}

// chainClient commits, in a loop, one new object X (referencing the
// previous one) and a new version of its head (referencing X), so that
// every X stays reachable from the root.
type chainClient struct {
	c    *wire.Conn
	head uint64
	prev uint64
	n    int
	id   int
	size int
}

// setupRoot creates root 0 referencing n client heads and returns clients.
func setupRoot(t *testing.T, addr string, n, size int) []*chainClient {
	t.Helper()
	c, err := wire.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	oids, err := c.NewOIDs(1 + n)
	if err != nil || oids[0] != 0 {
		t.Fatalf("new oids %v %v", oids, err)
	}
	recs := [][]byte{record.Build(0, []byte("root"), oids[1:]...)}
	var cls []*chainClient
	for i := 0; i < n; i++ {
		recs = append(recs, record.Build(oids[1+i], []byte("head")))
		cc, err := wire.Dial(addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		cls = append(cls, &chainClient{c: cc, head: oids[1+i], id: i, size: size})
	}
	if _, st, err := c.Commit(recs); err != nil || st != wire.StatusOK {
		t.Fatalf("set-up commit: %q %v", st, err)
	}
	return cls
}

func chainData(id, n, size int) []byte {
	b := make([]byte, size)
	s := uint64(id)<<32 | uint64(n)
	for i := range b {
		s = s*6364136223846793005 + 1442695040888963407
		b[i] = byte(s >> 56)
	}
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

// commitOne commits the next chain object; it returns the ack (on O) and
// the status byte.
func (cc *chainClient) commitOne() (ack, byte, error) {
	oids, err := cc.c.NewOIDs(1)
	if err != nil {
		return ack{}, 0, err
	}
	x := oids[0]
	var refs []uint64
	if cc.prev != 0 {
		refs = append(refs, cc.prev)
	}
	xr := record.Build(x, chainData(cc.id, cc.n, cc.size), refs...)
	hr := record.Build(cc.head, []byte(fmt.Sprintf("head %d", cc.n)), x)
	_, st, err := cc.c.Commit([][]byte{xr, hr})
	if err != nil {
		return ack{}, st, err
	}
	if st != wire.StatusOK {
		return ack{}, st, nil
	}
	cc.prev = x
	cc.n++
	return ack{oid: x, rec: xr, at: time.Now()}, st, nil
}

// storm is chain clients committing in a loop until end.
type storm struct {
	mu   sync.Mutex
	acks []ack
	stop chan struct{}
	wg   sync.WaitGroup
}

// startStorm starts every client committing; a failed commit fails t.
func startStorm(t *testing.T, clients []*chainClient) *storm {
	s := &storm{stop: make(chan struct{})}
	for _, cc := range clients {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-s.stop:
					return
				default:
				}
				a, st, err := cc.commitOne()
				if err != nil || st != wire.StatusOK {
					t.Errorf("client %d commit: %q %v", cc.id, st, err)
					return
				}
				s.mu.Lock()
				s.acks = append(s.acks, a)
				s.mu.Unlock()
			}
		}()
	}
	return s
}

// acked returns a condition: at least n commits were acknowledged.
func (s *storm) acked(n int) func() bool {
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.acks) >= n
	}
}

// ackedSince returns a condition: a commit was acknowledged after t0.
func (s *storm) ackedSince(t0 time.Time) func() bool {
	return func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.acks) > 0 && s.acks[len(s.acks)-1].at.After(t0)
	}
}

// end stops the clients and returns every acknowledged commit.
func (s *storm) end() []ack {
	close(s.stop)
	s.wg.Wait()
	return s.acks
}

// TestHotBackupUnderCommitStorm: a backup taken while a server serves a
// commit storm restores to a database holding every commit acknowledged
// before the backup began, and `durusbdb check` passes on it.
func TestHotBackupUnderCommitStorm(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "bdb")
	clients := setupRoot(t, srv.addr, 4, 1500)

	st := startStorm(t, clients)
	// The storm is running before the backup begins, and after it ends.
	proc.WaitForT(t, time.Minute, "200 commits acknowledged before the backup", st.acked(200))
	began := time.Now()
	out := filepath.Join(t.TempDir(), "hot.tar.sz")
	res, err := Backup(context.Background(), dir, out, BackupOptions{Options: quietOpts(), Stream: true})
	ended := time.Now()
	if err == nil {
		proc.WaitForT(t, time.Minute, "commits acknowledged after the backup", st.ackedSince(ended))
	}
	acks := st.end()
	if err != nil {
		t.Fatalf("hot backup: %v", err)
	}
	if res.Manifest.Mode != "hot" {
		t.Fatalf("backup mode %q, want hot (the server holds the lock)", res.Manifest.Mode)
	}
	var before, during, after int
	for _, a := range acks {
		switch {
		case a.at.Before(began):
			before++
		case a.at.Before(ended):
			during++
		default:
			after++
		}
	}
	t.Logf("backup took %v; commits acknowledged before %d, during %d, after %d", ended.Sub(began), before, during, after)
	if before == 0 || during+after == 0 {
		t.Fatalf("the storm did not run around the backup (before %d, during %d, after %d)", before, during, after)
	}
	srv.quit(t)

	rr, db := restoreChecked(t, out)
	if rr.Recovery == nil || !rr.Recovery.Ran || rr.Recovery.From == "" {
		t.Fatalf("restore ran no catastrophic recovery: %+v", rr.Recovery)
	}
	t.Logf("restore recovery: %s", rr.Recovery.Summary())
	var present int
	for _, a := range acks {
		got, err := db.Load(a.oid)
		if a.at.Before(began) {
			if err != nil {
				t.Fatalf("commit of oid %d acknowledged before the backup began is missing: %v", a.oid, err)
			}
			if !bytes.Equal(got, a.rec) {
				t.Fatalf("oid %d differs after restore", a.oid)
			}
		}
		if err == nil {
			present++
		}
	}
	t.Logf("restored database holds %d of %d acknowledged chain objects", present, len(acks))
}

// restoreChecked restores the backup stream out into a new directory,
// requires `durusbdb check` to pass on it and opens it read-only (closed by
// cleanup).
func restoreChecked(t *testing.T, out string) (*RestoreResult, *engine.DB) {
	t.Helper()
	restored := filepath.Join(t.TempDir(), "restored")
	rr, err := Restore(context.Background(), out, restored, RestoreOptions{Options: quietOpts()})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	check := exec.Command(durusbdbBin(t), "check", "--dir", restored)
	if b, err := check.CombinedOutput(); err != nil {
		t.Fatalf("durusbdb check on the restored directory: %v\n%s", err, b)
	}
	o := engineOpts("")
	o.Create = false
	o.ReadOnly = true
	db, err := engine.Open(context.Background(), restored, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return rr, db
}

// TestAtOpenReportsRecovery: after a server is killed, AtOpen runs normal
// recovery and reports the log range it replayed; a second AtOpen finds
// nothing to do; Recover refuses while a server runs.
func TestAtOpenReportsRecovery(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "bdb")
	clients := setupRoot(t, srv.addr, 1, 200)
	var acks []ack
	for i := 0; i < 50; i++ {
		a, st, err := clients[0].commitOne()
		if err != nil || st != wire.StatusOK {
			t.Fatalf("commit: %q %v", st, err)
		}
		acks = append(acks, a)
	}
	if _, err := Recover(context.Background(), dir, RecoverOptions{Options: quietOpts()}); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("Recover while the server runs: %v", err)
	}
	if _, err := Backup(context.Background(), dir, filepath.Join(t.TempDir(), "x"), BackupOptions{Options: quietOpts()}); err != nil {
		t.Fatalf("hot backup to a directory: %v", err)
	}
	srv.kill(t)

	var logBuf bytes.Buffer
	opts := quietOpts()
	opts.Logger = slogTo(&logBuf)
	r, err := AtOpen(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Ran || r.From == "" || r.To == "" || r.Kind != KindNormal || len(r.LogFiles) == 0 {
		t.Fatalf("report after a kill: %+v", r)
	}
	if !strings.Contains(logBuf.String(), "did not exit cleanly") || !strings.Contains(logBuf.String(), "from="+r.From) {
		t.Fatalf("recovery not logged: %s", logBuf.String())
	}
	t.Logf("%s", r.Summary())
	r2, err := AtOpen(context.Background(), dir, quietOpts())
	if err != nil {
		t.Fatal(err)
	}
	if r2.Ran {
		t.Fatalf("second AtOpen replayed a log: %+v", r2)
	}
	// An explicit normal recovery of the now cleanly closed directory
	// runs, but does not claim that the last owner crashed.
	logBuf.Reset()
	rc, err := Recover(context.Background(), dir, RecoverOptions{Options: opts})
	if err != nil || rc.Unclean || rc.Kind != KindNormal {
		t.Fatalf("normal recovery of a clean directory: %+v %v", rc, err)
	}
	if l := logBuf.String(); strings.Contains(l, "did not exit cleanly") || !strings.Contains(l, "level=INFO") {
		t.Fatalf("normal recovery of a clean directory logged that the last owner did not exit cleanly:\n%s", l)
	}
	// Catastrophic recovery of the stopped directory works too.
	r3, err := Recover(context.Background(), dir, RecoverOptions{Options: quietOpts(), Catastrophic: true})
	if err != nil || !r3.Ran || r3.Kind != KindCatastrophic {
		t.Fatalf("catastrophic recovery: %+v %v", r3, err)
	}
	o := engineOpts("")
	o.Create = false
	db, err := engine.Open(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range acks {
		got, err := db.Load(a.oid)
		if err != nil || !bytes.Equal(got, a.rec) {
			t.Fatalf("acknowledged oid %d after kill and recovery: %v", a.oid, err)
		}
	}
}

// TestLevelDBBackupNeedsStoppedServer: LevelDB allows one process, so a
// backup while a server runs is refused with a clear error; once the
// server stops, the backup works and restores.
func TestLevelDBBackupNeedsStoppedServer(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "leveldb")
	clients := setupRoot(t, srv.addr, 1, 300)
	var acks []ack
	for i := 0; i < 20; i++ {
		a, st, err := clients[0].commitOne()
		if err != nil || st != wire.StatusOK {
			t.Fatalf("commit: %q %v", st, err)
		}
		acks = append(acks, a)
	}
	out := filepath.Join(t.TempDir(), "b.sz")
	_, err := Backup(context.Background(), dir, out, BackupOptions{Options: quietOpts(), Stream: true})
	if !errors.Is(err, ErrLevelDBInUse) || !errors.Is(err, kv.ErrInUse) || !strings.Contains(err.Error(), "stop the server") {
		t.Fatalf("backup of a served LevelDB directory: %v", err)
	}
	if _, serr := os.Stat(out); serr == nil {
		t.Fatal("a refused backup left its output")
	}
	srv.quit(t)
	if _, err := Backup(context.Background(), dir, out, BackupOptions{Options: quietOpts(), Stream: true}); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "r")
	if _, err := Restore(context.Background(), out, restored, RestoreOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]byte{}
	for _, a := range acks {
		want[a.oid] = a.rec
	}
	verifyDB(t, restored, want)
	// A repair of the restored copy keeps everything.
	r, err := Recover(context.Background(), restored, RecoverOptions{Options: quietOpts()})
	if err != nil || r.Kind != KindRepair || len(r.After) == 0 || len(r.Lost) != 0 {
		t.Fatalf("leveldb repair: %+v %v", r, err)
	}
	verifyDB(t, restored, want)
}

// TestHotBackupSurvivesLogRemoval: between the copy of the database files
// and the copy of the logs, the server commits enough to checkpoint and
// remove the log file the backup started with; the backup still copies
// it (through its open descriptor) and the restore has every commit
// acknowledged before the backup began.
func TestHotBackupSurvivesLogRemoval(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "bdb")
	clients := setupRoot(t, srv.addr, 2, 16<<10)
	var acks []ack
	for i := 0; i < 100; i++ {
		a, st, err := clients[i%2].commitOne()
		if err != nil || st != wire.StatusOK {
			t.Fatalf("commit: %q %v", st, err)
		}
		acks = append(acks, a)
	}
	began := time.Now()
	opts := quietOpts()
	var removed string
	opts.hook = func(point string) {
		if point != "database files copied" {
			return
		}
		// Commit until the server has checkpointed and removed the first
		// log file (its policy: a checkpoint per 16 MiB of log).
		first := filepath.Join(dir, "log.0000000001")
		deadline := time.Now().Add(40 * time.Second)
		for i := 0; time.Now().Before(deadline); i++ {
			if _, err := os.Stat(first); err != nil {
				removed = first
				return
			}
			a, st, err := clients[i%2].commitOne()
			if err != nil || st != wire.StatusOK {
				t.Errorf("commit during the backup: %q %v", st, err)
				return
			}
			acks = append(acks, a)
		}
	}
	out := filepath.Join(t.TempDir(), "b")
	res, err := Backup(context.Background(), dir, out, BackupOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if removed == "" {
		t.Fatalf("the server did not remove log.0000000001 during the backup (%d commits)", len(acks))
	}
	if res.Manifest.File("log.0000000001") == nil {
		t.Fatalf("the removed log.0000000001 is not in the backup: %+v", res.Manifest.Files)
	}
	srv.quit(t)
	rr, db := restoreChecked(t, out)
	t.Logf("%d log files in the backup; %s", len(rr.Recovery.LogFiles), rr.Recovery.Summary())
	for _, a := range acks {
		got, err := db.Load(a.oid)
		if a.at.Before(began) && (err != nil || !bytes.Equal(got, a.rec)) {
			t.Fatalf("oid %d, acknowledged before the backup, after restore: %v", a.oid, err)
		}
	}
}
