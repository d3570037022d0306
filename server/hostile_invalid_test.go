package server

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInvalidSetsMemoryChild: 400 idle connections and one commit of
// 200,000 separate oids. Each connection's set would stay within its own
// caps (262,144 runs), so before --max-invalid-memory every one of them
// held 3.2 MB: RSS 25 → 1,327 MB, and 4,096 connections (the default
// --max-connections) would have held 13 GB. With a budget of 64 MiB that
// commit is refused (rule 1: its runs told to the 400 would take the sets
// over it; it used to be applied and close all but the 20 connections
// whose sets fitted), and no connection is closed. Commits that fit it
// one at a time, piling up in sets that are never synced, are applied:
// the connections whose sets would take the total over are closed (I7),
// and the RSS grows by at most 4 times the budget (the commits' own
// records, the collector's headroom).
func TestInvalidSetsMemoryChild(t *testing.T) {
	const idle, runs, budget = 400, 200_000, 64 << 20
	const fitRuns = budget / runBytes / (idle + 1) // a commit that fits alone
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
			scattered := func(from, n int) [][]byte {
				var recs [][]byte
				for i := from; i < from+2*n; i += 2 {
					recs = append(recs, rec(oids[i], "x"))
				}
				return recs
			}
			settle(t, pid)
			rss0, _, _ := procStat(t, pid)
			if _, st := w.commit(scattered(0, runs)...); st != 'E' {
				t.Fatalf("commit of %d runs to %d connections under --max-invalid-memory %d: %q, want E", runs, idle, budget, st)
			}
			if !strings.Contains(p.Log(), "more than --max-invalid-memory") {
				t.Error("the refusal does not name --max-invalid-memory")
			}
			for i, c := range cs {
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.wc().Sync(); err != nil {
					t.Fatalf("idle connection %d after the refused commit: %v", i, err)
				}
			}
			// Commits that fit one at a time, into sets never synced.
			for k := range 3 {
				if _, st := w.commit(scattered(2*k*fitRuns, fitRuns)...); st != 'O' {
					t.Fatalf("commit %d of %d runs: %q", k, fitRuns, st)
				}
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
			t.Logf("%s: %d idle connections, 3 commits of %d runs, --max-invalid-memory %d MiB: RSS %d → %d MB, peak %d MB; %d connections closed",
				be, idle, fitRuns, budget>>20, rss0>>20, rss1>>20, hwm1>>20, closed)
			if bound := int64(4 * budget); rss1-rss0 > bound || hwm1-rss0 > bound {
				t.Errorf("RSS grew by %d MB (peak +%d MB), want at most %d MB", (rss1-rss0)>>20, (hwm1-rss0)>>20, bound>>20)
			}
			// The sets of the connections left hold the 3 commits' runs.
			if left, most := idle-closed, budget/runBytes/(3*fitRuns); closed == 0 || left > most+1 {
				t.Errorf("%d connections closed, %d left: want at most %d left (whose sets fit the budget)", closed, left, most)
			}
			if !strings.Contains(p.Log(), "over --max-invalid-memory") {
				t.Error("the closings are not logged naming --max-invalid-memory")
			}
			if st, _ := w.load(oids[0]); st != 'O' {
				t.Fatalf("load after the commits: %q", st)
			}
		})
	}
}
