package server

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInvalidSetsMemoryChild: 400 idle connections and one commit of
// 200,000 separate oids. Each connection's set stays within its own caps
// (262,144 runs), so before --max-invalid-memory every one of them held
// 3.2 MB: RSS 25 → 1,327 MB, and 4,096 connections (the default
// --max-connections) would have held 13 GB. With a budget of 64 MiB the
// RSS grows by at most 4 times the budget (the commit's own records, the
// collector's headroom; measured +121 to +152 MB), the connections over it
// (all but the 20 whose sets fit) are closed, the commit is acknowledged
// and the server serves on.
func TestInvalidSetsMemoryChild(t *testing.T) {
	const idle, runs, budget = 400, 200_000, 64 << 20
	for _, be := range backendsUnderTest() {
		t.Run(be, func(t *testing.T) {
			p, pid := startHostile(t, be, "--max-connections", strconv.Itoa(idle+10),
				"--max-invalid-memory", strconv.Itoa(budget))
			var cs []*client
			for range idle {
				c := dialUnix(t, p.sock)
				c.sync()
				cs = append(cs, c)
			}
			w := dialUnix(t, p.sock)
			var oids []uint64
			for len(oids) < 2*runs {
				oids = append(oids, w.newOIDs(200)...)
			}
			var recs [][]byte
			for i := 0; i < 2*runs; i += 2 {
				recs = append(recs, rec(oids[i], "x"))
			}
			settle(t, pid)
			rss0, _, _ := procStat(t, pid)
			if _, st := w.commit(recs...); st != 'O' {
				t.Fatalf("commit: %q", st)
			}
			settle(t, pid)
			rss1, hwm1, _ := procStat(t, pid)
			closed := 0
			for _, c := range cs {
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.wc().Sync(); err != nil {
					closed++
				}
			}
			fit := budget / (runs * runBytes)
			t.Logf("%s: %d idle connections, a commit of %d runs, --max-invalid-memory %d MiB: RSS %d → %d MB, peak %d MB; %d connections closed",
				be, idle, runs, budget>>20, rss0>>20, rss1>>20, hwm1>>20, closed)
			if bound := int64(4 * budget); rss1-rss0 > bound || hwm1-rss0 > bound {
				t.Errorf("RSS grew by %d MB (peak +%d MB), want at most %d MB", (rss1-rss0)>>20, (hwm1-rss0)>>20, bound>>20)
			}
			if closed < idle-fit-1 || closed > idle-fit+1 {
				t.Errorf("%d connections closed, want %d (all but the %d whose sets fit the budget)", closed, idle-fit, fit)
			}
			if !strings.Contains(p.Log(), "over --max-invalid-memory") {
				t.Error("the closings are not logged naming --max-invalid-memory")
			}
			if st, _ := w.load(oids[0]); st != 'O' {
				t.Fatalf("load after the commit: %q", st)
			}
		})
	}
}
