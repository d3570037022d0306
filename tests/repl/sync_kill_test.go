//go:build bdb

package repl

import (
	"bytes"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// fillGroup commits batches of new objects (objs of size bytes each) on
// the master at addr, the head referencing the last batch; it returns the
// head's last record and one object of each batch.
func fillGroup(t *testing.T, addr string, head uint64, batches, objs, size int) (last []byte, sample []ackedRec) {
	t.Helper()
	c, err := wire.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for b := 0; b < batches; b++ {
		oids, err := c.NewOIDs(objs)
		if err != nil {
			t.Fatal(err)
		}
		recs := make([][]byte, 0, objs+1)
		for _, o := range oids {
			data := make([]byte, size)
			rand.Read(data)
			recs = append(recs, record.Build(o, data))
		}
		last = record.Build(head, fmt.Appendf(nil, "batch %d", b), oids...)
		recs = append(recs, last)
		if _, st, err := c.Commit(recs); err != nil || st != wire.StatusOK {
			t.Fatalf("fill batch %d: %q %v", b, st, err)
		}
		sample = append(sample, ackedRec{oids[0], recs[0]})
	}
	return last, sample
}

// syncRounds is how many times TestReplKillDuringSync kills the joining
// site (REPL_SYNC_ROUNDS overrides).
func syncRounds() int {
	if n, err := strconv.Atoi(os.Getenv("REPL_SYNC_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 6
}

// TestReplKillDuringSync: a third site joins a group holding enough data
// that its sync-up (libdb's internal init: the database files copied
// from the master, then the log) takes a while; it is killed with
// SIGKILL at a random moment while /role says "syncing", and restarted on
// what the kill left, several times. It must end a replica serving every
// record, and, once the group is stopped cleanly, its database files must
// dump (db5.3_dump) as the master's. The first directory killed during
// the copy, and the first killed while catching up on the log, are also
// copied aside and handed to standalone recovery
// (db5.3_recover, then durusbdb recover), whose outcome the test logs:
// see docs/REPLICATION.md, "A site killed during its sync-up".
func TestReplKillDuringSync(t *testing.T) {
	bin := cliBinary(t)
	sites := newCLISites(t, bin, 3)
	startCLIGroup(t, sites[:2])
	m, joiner := sites[0], sites[2]
	c, err := wire.Dial(m.durus, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	heads := setupRoot(t, c, 1)
	c.Close()
	start := time.Now()
	last, sample := fillGroup(t, m.durus, heads[0], 160, 100, 2000)
	t.Logf("filled the group: %d objects of 2000 bytes in %v", 160*100, time.Since(start).Round(time.Millisecond))

	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	maxDelay := time.Second // shrinks when a kill comes after the sync-up
	killed, copied := 0, map[bool]bool{}
	reinit := false // the last kill left an internal init unfinished
	for r := 0; r < syncRounds(); r++ {
		if r > 0 { // more to catch up with at each restart
			l, more := fillGroup(t, m.durus, heads[0], 30, 100, 2000)
			last, sample = l, append(sample, more...)
		}
		off := joiner.logSize()
		joiner.start(false)
		// The sync-up starts once the joiner knows the master.
		testwait.Within(t, time.Minute, joiner.name+" finding the master", func() bool {
			return strings.Contains(joiner.logSince(off), "event=newmaster")
		})
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		if r == 0 { // early in the copy: database files still empty
			delay = time.Duration(rng.Int64N(int64(150 * time.Millisecond)))
		}
		time.Sleep(delay)
		joiner.kill()
		log := joiner.logSince(off)
		synced := strings.Contains(log, "event=startupdone")
		reinit = checkReinit(t, log, reinit)
		_, err := os.Stat(filepath.Join(joiner.dir, "__db.rep.init"))
		initKilled := err == nil
		t.Logf("round %d: killed %v after the master was known; sync-up done then: %v; killed during an internal init: %v", r, delay, synced, initKilled)
		reinit = reinit || initKilled
		if synced {
			maxDelay = max(maxDelay*2/3, 20*time.Millisecond)
			continue
		}
		killed++
		if !copied[initKilled] { // the first of each kind of kill
			copied[initKilled] = true
			standaloneRecovery(t, bin, joiner.dir)
		}
	}
	if killed == 0 {
		t.Fatalf("no kill landed during the sync-up in %d rounds", syncRounds())
	}
	off := joiner.logSize()
	joiner.start(false)
	joiner.waitRole(2*time.Minute, "replica")
	checkReinit(t, joiner.logSince(off), reinit)
	testwait.For(t, joiner.name+" serving the last commit", func() bool { return loadsAddr(joiner.durus, heads[0], last) })
	for _, a := range sample {
		if !loadsAddr(joiner.durus, a.oid, a.rec) {
			t.Fatalf("%s: object %d not served as committed", joiner.name, a.oid)
		}
	}
	t.Logf("%d of %d kills during the sync-up; the restarted site is a replica serving every record", killed, syncRounds())
	stopAndCompare(t, m, sites[1], joiner)
}

// checkReinit checks, when a kill left an internal init unfinished
// (pending), that the run whose log is log either finished the sync-up
// with a new internal init or did not finish it; it returns whether one
// is still pending.
func checkReinit(t *testing.T, log string, pending bool) bool {
	t.Helper()
	if !pending || !strings.Contains(log, "event=startupdone") {
		return pending
	}
	if !strings.Contains(log, "event=init_done") {
		t.Errorf("a site killed during its internal init finished its sync-up without a new internal init")
	}
	return false
}

// standaloneRecovery copies dir, just killed mid sync-up, aside and runs
// db5.3_recover and `durusbdb recover` on copies, logging what each does.
func standaloneRecovery(t *testing.T, bin, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	t.Logf("%s killed mid sync-up holds %v", dir, names)
	initPending := false
	if _, err := os.Stat(filepath.Join(dir, "__db.rep.init")); err == nil {
		initPending = true
	}
	for _, tool := range [][]string{{"db5.3_recover", "-h"}, {bin, "recover", "--dir"}} {
		cp := fmt.Sprintf("%s.killed-%d", dir, len(tool))
		if err := os.RemoveAll(cp); err != nil { // an earlier round's
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", dir, cp).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v %s", dir, err, out)
		}
		out, err := exec.Command(tool[0], append(tool[1:], cp)...).CombinedOutput()
		t.Logf("standalone recovery of a directory killed mid sync-up: %s: err %v\n%s", filepath.Base(tool[0]), err, bytes.TrimSpace(out))
		if tool[0] == "db5.3_recover" {
			out, err := exec.Command(bin, "check", "--dir", cp).CombinedOutput()
			t.Logf("durusbdb check of that directory after db5.3_recover: err %v\n%s", err, proc.Tail(out, 5))
		}
		if tool[0] == bin && initPending && (err == nil || !bytes.Contains(out, []byte("__db.rep.init")) || !bytes.Contains(out, []byte("rejoin the group"))) {
			t.Errorf("durusbdb recover of a directory killed during its internal init: %v, want a refusal naming __db.rep.init and saying to rejoin the group", err)
		}
		if tool[0] == bin && err != nil && !bytes.Contains(out, []byte("rejoin the group")) {
			t.Errorf("durusbdb recover of a replication site's directory failed without saying to rejoin the group: %s", out)
		}
	}
}

// stopAndCompare stops the replicas, then the master, cleanly, and fails
// unless every replica's database files dump (db5.3_dump, meta's in_use
// aside) as the master's.
func stopAndCompare(t *testing.T, m *cliSite, replicas ...*cliSite) {
	t.Helper()
	for _, s := range append(replicas, m) {
		if err := s.p.Stop(30 * time.Second); err != nil {
			t.Fatalf("%s: clean stop: %v", s.name, err)
		}
	}
	want := dumpSite(t, m.dir)
	for _, s := range replicas {
		got := dumpSite(t, s.dir)
		for f, d := range want {
			if got[f] != d {
				t.Errorf("%s: %s dumps differently from the master's", s.name, f)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d database files, the master %d", s.name, len(got), len(want))
		}
	}
	t.Logf("the %d database files of every site dump as the master's", len(want))
}
