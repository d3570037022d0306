package server

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/pickle"
	"github.com/durusbdb/durusbdb/internal/proc"
)

// hostileScale reads DURUSBDB_HOSTILE_FULL: set, the hostile-client tests
// run at the sizes (100 MB records, 256 MB commits); unset, at CI
// sizes with the same shape.
func hostileScale() (full bool) { return os.Getenv("DURUSBDB_HOSTILE_FULL") != "" }

// backendsUnderTest lists the backends of the child-process tests.
func backendsUnderTest() []string {
	if bdbTag {
		return []string{"leveldb", "bdb"}
	}
	return []string{"leveldb"}
}

// procStat returns a process's VmRSS and VmHWM (bytes) and its CPU time
// (user + system).
func procStat(t testing.TB, pid int) (rss, hwm int64, cpu time.Duration) {
	t.Helper()
	status := fmt.Sprintf("/proc/%d/status", pid)
	rss = memTotalField(status, "VmRSS:")
	hwm = memTotalField(status, "VmHWM:")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th fields of the line (clock ticks, 100 per second).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return rss, hwm, time.Duration(ut+st) * 10 * time.Millisecond
}

// settle polls the RSS of pid every 100 ms until two samples differ by
// less than 1 MiB (at most 10 s): the child's memory has settled after the
// work before, instead of a fixed sleep.
func settle(t testing.TB, pid int) {
	t.Helper()
	prev, _, _ := procStat(t, pid)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		<-tick.C
		rss, _, _ := procStat(t, pid)
		if d := rss - prev; d < 1<<20 && d > -1<<20 {
			return
		}
		prev = rss
	}
	t.Logf("the RSS of pid %d did not settle within 10 s", pid)
}

// dialUnix connects a protocol client to a child server's socket.
func dialUnix(t testing.TB, sock string) *client {
	t.Helper()
	nc, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}
}

// startHostile starts a child server for one scenario and returns it with
// its pid.
func startHostile(t *testing.T, backend string, extra ...string) (*serverProc, int) {
	t.Helper()
	bin := buildCLI(t)
	sock := filepath.Join(t.TempDir(), "s")
	// No free-space reserve: these tests are about memory, not disk.
	p := startProc(t, bin, t.TempDir(), sock, append([]string{"--create", "--backend", backend, "--min-free-space", "0"}, extra...)...)
	return p, p.Pid()
}

// TestHostileLoadsChild (issue 15 item 2): 20 connections each send one L
// for a large record and never read the reply. The server's RSS (a child
// process) grows by at most 512 MB for a 100 MB record (full scale); at CI
// scale by 5× the record plus 16 MiB that do not shrink with the record:
// LevelDB's one read of a 10 MB value holds the table block, the
// std::string Get fills and leveldb_get's malloc'd copy at once beside
// Go's copy, and glibc keeps freed chunks in per-thread arenas. Measured
// peaks: LevelDB +19–53 MB (above 50 MB in 1 of 6 runs and one CI run),
// bdb +10–20 MB; 20 unshared copies would be +200 MB.
func TestHostileLoadsChild(t *testing.T) {
	size := 10 << 20
	bound := int64(5*size + 16<<20)
	if hostileScale() {
		size, bound = 100<<20, 512<<20
	}
	for _, be := range backendsUnderTest() {
		t.Run(be, func(t *testing.T) {
			p, pid := startHostile(t, be)
			c := dialUnix(t, p.sock)
			oid := c.newOIDs(2)[1] // 0 is the root
			big := rec(oid, string(bytes.Repeat([]byte{'x'}, size)))
			if _, st := c.commit(rec(0, "root", oid), big); st != 'O' {
				t.Fatalf("commit: %q", st)
			}
			c.nc.Close()
			settle(t, pid) // the commit's garbage
			rss0, hwm0, _ := procStat(t, pid)
			var cs []*client
			for range 20 {
				r := dialUnix(t, p.sock)
				r.nc.(*net.UnixConn).SetReadBuffer(16 << 10)
				r.send([]byte{'L'}, u64(oid))
				cs = append(cs, r)
			}
			for _, r := range cs {
				if st := r.read(1)[0]; st != 'O' {
					t.Fatalf("load status %q", st)
				}
			}
			settle(t, pid) // the replies the server holds
			rss1, hwm1, _ := procStat(t, pid)
			t.Logf("%s: 20 non-reading L of a %d MB record: RSS %d → %d MB (+%d), peak %d → %d MB",
				be, size>>20, rss0>>20, rss1>>20, (rss1-rss0)>>20, hwm0>>20, hwm1>>20)
			if rss1-rss0 > bound || hwm1-rss0 > bound {
				t.Errorf("RSS grew by %d MB (peak +%d MB), want ≤ %d MB", (rss1-rss0)>>20, (hwm1-rss0)>>20, bound>>20)
			}
		})
	}
}

// TestHostileCommitsChild (issue 15 item 2): 4 connections send all but
// the last byte of a large commit and stall. With --max-inflight B the
// server's RSS grows by at most B (the commits that do not fit are
// refused with E once their data has been discarded). Full scale: 256 MB
// commits, B = 512 MiB; CI scale: 16 MB commits, B = 32 MiB, and 16 MiB
// more are allowed for the runtime's own growth, which is not negligible
// at that size.
func TestHostileCommitsChild(t *testing.T) {
	size, budget, slack := 16<<20, int64(32<<20), int64(16<<20)
	if hostileScale() {
		size, budget, slack = 256<<20, 512<<20, 0
	}
	for _, be := range backendsUnderTest() {
		t.Run(be, func(t *testing.T) {
			p, pid := startHostile(t, be, "--max-inflight", strconv.FormatInt(budget, 10),
				"--inflight-wait", "1s", "--commit-lease", "200ms")
			var cs []*client
			var datas [][]byte
			for range 4 {
				c := dialUnix(t, p.sock)
				oid := c.newOIDs(1)[0]
				cs = append(cs, c)
				datas = append(datas, txnData(rec(oid, string(bytes.Repeat([]byte{'y'}, size)))))
			}
			settle(t, pid)
			rss0, hwm0, _ := procStat(t, pid)
			for i, c := range cs {
				d := datas[i]
				c.begin()
				c.send(u32(uint32(len(d))), d[:len(d)-1])
			}
			// The waits for room end (1 s) with refusals; the statuses
			// below say whether there were any.
			proc.WaitFor(10*time.Second, func() bool { return strings.Contains(p.Log(), "commit refused: bytes in flight") })
			settle(t, pid)
			rss1, hwm1, _ := procStat(t, pid)
			statuses := ""
			for i, c := range cs {
				d := datas[i]
				c.send(d[len(d)-1:])
				statuses += string(c.read(1))
			}
			t.Logf("%s: 4 stalled %d MB commits, --max-inflight %d MB: RSS %d → %d MB (+%d), peak %d → %d MB; replies %s",
				be, size>>20, budget>>20, rss0>>20, rss1>>20, (rss1-rss0)>>20, hwm0>>20, hwm1>>20, statuses)
			if rss1-rss0 > budget+slack || hwm1-rss0 > budget+slack {
				t.Errorf("RSS grew by %d MB (peak +%d MB), over the budget of %d MB", (rss1-rss0)>>20, (hwm1-rss0)>>20, budget>>20)
			}
			if !strings.Contains(statuses, "E") {
				t.Errorf("no commit refused for the budget: %s", statuses)
			}
			for _, line := range strings.Split(p.Log(), "\n") {
				if strings.Contains(line, "refused") {
					t.Log(line)
				}
			}
		})
	}
}

// scanBombs are the --verify-refs bombs of issue 15 item 3, as records of
// oid; each names the limit that refuses it.
func scanBombs(t testing.TB, oid uint64) []struct {
	name, limit string
	rec         []byte
} {
	class := "\x80\x02cmod\nK\nq\x00."
	zl := func(n int) string {
		var z bytes.Buffer
		zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
		zw.Write([]byte{0x80, 0x02})
		zw.Write(bytes.Repeat([]byte{'N'}, n))
		zw.Write([]byte{'.'})
		zw.Close()
		return z.String()
	}
	return []struct {
		name, limit string
		rec         []byte
	}{
		{"1 MB of MARK", "stack", rec(oid, class+strings.Repeat("(", 1<<20))},
		{"8 KB zlib of 8M NONE", "ratio", rec(oid, class+zl(8<<20))},
		{"16 KB zlib of 16M NONE", "ratio", rec(oid, class+zl(16<<20))},
	}
}

// TestVerifyRefsBombsChild (issue 15 item 3): with --verify-refs each bomb
// is refused with E, logged naming the limit; it grows the server's RSS by
// at most 256 MB and costs it at most 1 s of CPU, and the server lives.
func TestVerifyRefsBombsChild(t *testing.T) {
	for _, be := range backendsUnderTest() {
		t.Run(be, func(t *testing.T) {
			p, pid := startHostile(t, be, "--verify-refs")
			c := dialUnix(t, p.sock)
			oid := c.newOIDs(1)[0]
			for _, b := range scanBombs(t, oid) {
				// The CPU a bomb costs is measured up to twice, the lower
				// figure kept: CI shares two cores with other test
				// binaries, and contention inflated one CI run's figure
				// 2.3× (1.08 s against 0.41–0.51 s alone). A bomb that
				// costs more than 1 s fails both times.
				data := make([]byte, 0, len(b.rec)+12)
				data = binary.BigEndian.AppendUint32(data, uint32(8+len(b.rec)))
				data = binary.BigEndian.AppendUint64(data, oid)
				data = append(data, b.rec...)
				var cpu time.Duration
				for try := 1; try <= 2; try++ {
					settle(t, pid)
					rss0, hwm0, cpu0 := procStat(t, pid)
					c.begin()
					if st := c.commitData(data); st != 'E' {
						t.Fatalf("%s: status %q, want E", b.name, st)
					}
					rss1, hwm1, cpu1 := procStat(t, pid)
					grew := max(rss1, hwm1) - max(rss0, hwm0)
					t.Logf("%s: %s (%d bytes), try %d: RSS %d → %d MB, peak %d → %d MB (+%d), CPU %v",
						be, b.name, len(b.rec), try, rss0>>20, rss1>>20, hwm0>>20, hwm1>>20, max(grew, 0)>>20, cpu1-cpu0)
					if rss1-rss0 > 256<<20 || grew > 256<<20 {
						t.Errorf("%s: RSS grew by %d MB (peak +%d)", b.name, (rss1-rss0)>>20, grew>>20)
					}
					cpu = cpu1 - cpu0
					if cpu <= time.Second {
						break
					}
				}
				if cpu > time.Second {
					t.Errorf("%s: %v of CPU, twice", b.name, cpu)
				}
				waitFor(t, 5*time.Second, "the refusal logged with its limit", func() bool {
					return strings.Contains(p.Log(), "scan's "+b.limit+" limit")
				})
			}
			// The server lives.
			if st, _ := c.load(oid); st != 'K' {
				t.Fatalf("load after the bombs: %q", st)
			}
		})
	}
}

// TestVerifyRefsBombs (issue 15 item 3, in process): with the reference
// check of --verify-refs each bomb is answered E, the log names the limit
// that refused it, and the connection and server go on.
func TestVerifyRefsBombs(t *testing.T) {
	ts := startServer(t, Config{VerifyRefs: func(oid uint64, rec []byte) error { return pickle.Limits{}.CheckRefs(rec) }}, newMemStore())
	c := ts.dial(t)
	oid := c.newOIDs(2)[1]
	for _, b := range scanBombs(t, oid) {
		c.begin()
		if st := c.commitData(frame(oid, b.rec)); st != 'E' {
			t.Fatalf("%s: status %q, want E", b.name, st)
		}
		if !containsLog(ts, "scan's "+b.limit+" limit") {
			t.Fatalf("%s: the log does not name the %s limit:\n%s", b.name, b.limit, ts.logs.String())
		}
	}
	if st, _ := c.load(oid); st != 'K' {
		t.Fatalf("load after the bombs: %q", st)
	}
}
