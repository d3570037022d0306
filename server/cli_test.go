package server

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// cliBuilder holds the CLI that buildCLI builds, once per test binary.
var cliBuilder proc.Builder

// TestMain removes the CLI built by buildCLI and checks for goroutine leaks.
func TestMain(m *testing.M) {
	code := m.Run()
	// Every connection, listener and token goroutine ends with the tests.
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "goroutines outlive the tests:", err)
		code = 1
	}
	cliBuilder.Close()
	os.Exit(code)
}

// buildCLI builds cmd/durusbdb (with -tags bdb when this test binary has
// it) once per test binary run.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the CLI; skipped with -short")
	}
	tags := ""
	if bdbTag {
		tags = "bdb"
	}
	bin, err := cliBuilder.Build(context.Background(), "github.com/durusbdb/durusbdb/cmd/durusbdb", tags)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// serverProc is a `durusbdb serve` child process on a unix socket.
type serverProc struct {
	*proc.Process
	sock string
}

// startProc starts serve on sock and waits for its "serving" log line; the
// process is killed at cleanup.
func startProc(t *testing.T, bin, dir, sock string, extra ...string) *serverProc {
	t.Helper()
	args := append([]string{bin, "serve", "--dir", dir, "--address", sock}, extra...)
	p := &serverProc{Process: proc.StartT(t, proc.Options{}, args...), sock: sock}
	if err := p.WaitUntil(20*time.Second, `log "msg=serving"`, func() bool {
		return strings.Contains(p.Log(), "msg=serving")
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// exit wants the process to end with status 0 within 10 s (after what).
func (p *serverProc) exit(t *testing.T, what string) {
	t.Helper()
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("exit after %s: %v\n%s", what, err, p.LogTail(30))
	}
}

func (p *serverProc) dial(t *testing.T) *client {
	t.Helper()
	return dialUnix(t, p.sock)
}

// CLI bad input: one clear line and a non-zero exit.
func TestCLIBadInput(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--no-such-flag"}, 2, "no-such-flag"},
		{[]string{"serve"}, 2, "--dir is required"},
		{[]string{"serve", "--dir", filepath.Join(dir, "missing")}, 1, "missing"},
		{[]string{"serve", "--dir", file}, 1, "not a directory"},
		{[]string{"serve", "--dir", dir, "--create", "--port", port}, 1, "already in use"},
		{[]string{"serve", "--dir", dir, "--umask", "zz"}, 2, "--umask"},
		{[]string{"serve", "--dir", dir, "--durability", "sometimes"}, 2, "durability"},
		{[]string{"serve", "--dir", dir, "--file", "x.durus"}, 2, "migrate"},
	}
	for _, tc := range cases {
		cmd := exec.Command(bin, tc.args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d; output %q should mention %q", tc.args, code, tc.code, out.String(), tc.want)
		}
		if lines := strings.Count(strings.TrimSpace(out.String()), "\n") + 1; lines > 2 {
			t.Errorf("%v: %d lines of output:\n%s", tc.args, lines, out.String())
		}
	}
}

// C15, C2 via the CLI: Q stops the process with status 0 within 10 s, the
// socket file goes, and everything acknowledged is there after a restart.
// Also --stop and SIGTERM.
func TestCLIQuitAndRestart(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "s")
	p := startProc(t, bin, dir, sock, "--create")
	c := p.dial(t)
	o := c.newOIDs(2)
	root := rec(0, "root", o[1])
	if _, st := c.commit(root, rec(o[1], "x")); st != 'O' {
		t.Fatal(st)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	q := p.dial(t)
	start := time.Now()
	q.send([]byte{'Q'})
	waitFor(t, time.Second, "address to stop accepting", func() bool {
		nc, err := net.Dial("unix", sock)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	p.exit(t, "Q")
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("exit took %v", el)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatal("socket file left behind")
	}

	p = startProc(t, bin, dir, sock)
	c = p.dial(t)
	if st, r := c.load(0); st != 'O' || !bytes.Equal(r, root) {
		t.Fatalf("root after restart: %q", st)
	}
	if n := c.newOIDs(1)[0]; n <= o[1] {
		t.Fatalf("oid %d reused after restart", n)
	}
	// --stop.
	out, err := exec.Command(bin, "serve", "--stop", "--address", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("--stop: %v %s", err, out)
	}
	p.exit(t, "--stop")
	// SIGTERM.
	p = startProc(t, bin, dir, sock)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.exit(t, "SIGTERM")
}

// C37 (scaled down; DURUSBDB_CRASH_ROUNDS sets the rounds): kill -9 under
// 8 committing clients; after a restart every acknowledged commit is there
// and every commit is all-or-nothing.
func TestCLICrash(t *testing.T) {
	bin := buildCLI(t)
	rounds := 5
	if s := os.Getenv("DURUSBDB_CRASH_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "s")
	const clients = 8
	p := startProc(t, bin, dir, sock, "--create")
	setup := p.dial(t)
	oids := setup.newOIDs(1 + 2*clients)[1:]
	// Each client owns a pair of records, both carrying the same sequence
	// number in every commit.
	pairRec := func(oid uint64, seq int) []byte { return rec(oid, fmt.Sprintf("seq=%08d", seq)) }
	recs := [][]byte{rec(0, "root", oids...)}
	for _, o := range oids {
		recs = append(recs, pairRec(o, 0))
	}
	if _, st := setup.commit(recs...); st != 'O' {
		t.Fatal(st)
	}
	acked := make([]int, clients)
	seqOf := func(r []byte) int {
		s := string(r[12:])
		n, err := strconv.Atoi(strings.TrimPrefix(s, "seq="))
		if err != nil {
			t.Fatalf("record %q", s)
		}
		return n
	}
	for round := range rounds {
		wg := pairCommitters(t, sock, oids, acked, pairRec)
		// The kill lands at a random moment: a deliberate delay, not a wait.
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		if err := p.Kill(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		wg.Wait()

		p = startProc(t, bin, dir, sock)
		c := p.dial(t)
		for i := range clients {
			st1, r1 := c.load(oids[2*i])
			st2, r2 := c.load(oids[2*i+1])
			if st1 != 'O' || st2 != 'O' {
				t.Fatalf("round %d client %d: records missing (%q %q)", round, i, st1, st2)
			}
			s1, s2 := seqOf(r1), seqOf(r2)
			if s1 != s2 {
				t.Fatalf("round %d client %d: half a commit (seq %d and %d)", round, i, s1, s2)
			}
			if s1 < acked[i] {
				t.Fatalf("round %d client %d: acknowledged seq %d lost (found %d)", round, i, acked[i], s1)
			}
			acked[i] = s1
		}
		total := 0
		for _, a := range acked {
			total += a
		}
		t.Logf("round %d: %d commits acknowledged so far", round, total)
	}
	if acked[0] == 0 {
		t.Fatal("no commit was acknowledged")
	}
}

// pairCommitters starts one client per entry of acked, each committing
// its pair of records (oids[2i], oids[2i+1]) with the next sequence number
// until the server dies, and recording in acked[i] the last one answered
// O. Wait on the group before reading acked.
func pairCommitters(t *testing.T, sock string, oids []uint64, acked []int, pairRec func(uint64, int) []byte) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for i := range acked {
		wc, err := wire.Dial(sock, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer wc.NetConn().Close()
			for seq := acked[i] + 1; ; seq++ {
				data := txnData(pairRec(oids[2*i], seq), pairRec(oids[2*i+1], seq))
				st, err := wc.CommitData(data)
				if err != nil {
					return // the kill
				}
				if st != 'O' {
					t.Errorf("client %d: status %q", i, st)
					return
				}
				acked[i] = seq // only this goroutine writes acked[i] until Wait
			}
		}()
	}
	return &wg
}

// C59, rule 8 through the CLI: with --verify-refs a record whose pickle
// references an oid missing from its refs is refused with E (the stock
// client raises ProtocolError); correct records from the stock client pass.
func TestCLIVerifyRefs(t *testing.T) {
	bin := buildCLI(t)
	py := pythonPath(t)
	sock := filepath.Join(t.TempDir(), "s")
	startProc(t, bin, t.TempDir(), sock, "--create", "--verify-refs")
	script := filepath.Join(t.TempDir(), "v.py")
	os.WriteFile(script, []byte(`
import sys
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent_dict import PersistentDict
from durus.serialize import pack_record, unpack_record
from durus.utils import int8_to_str
from durus.error import ProtocolError
c = Connection(ClientStorage(address=sys.argv[1]))
root = c.get_root()
root['a'] = PersistentDict()
root['a']['b'] = PersistentDict()
c.commit()
s = c.get_storage()
oid, data, refs = unpack_record(s.load(int8_to_str(0)))
assert refs, refs
s.begin()
s.store(oid, pack_record(oid, data, b''))
try:
    s.end()
    print('accepted')
except ProtocolError as e:
    print('refused', e)
`), 0o644)
	out, err := exec.Command(py, script, sock).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused") {
		t.Fatalf("verify-refs: %v\n%s", err, out)
	}
}
