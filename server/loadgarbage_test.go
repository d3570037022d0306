package server

import (
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/engine"
)

// Replies of a record the record cache holds give their charge back
// without counting it as garbage: letting go of the reply frees nothing,
// and counting it made the budget force a collection every few loads (a
// QA round: 1,090 runtime.GC calls in 10 s of loads of 40 KB records under
// a 4 MiB budget, half the loads/s of 30 KB records, which are not
// charged).
func TestCachedLoadsAreNotGarbage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		st := openEngine(t, backend, engine.Options{RecordCache: 8 << 20})
		ts := startServer(t, Config{MaxInflight: 1 << 20}, st)
		c := ts.dial(t)
		oid := c.newOIDs(1)[0]
		if _, s := c.commit(rec(oid, strings.Repeat("r", 40<<10))); s != 'O' {
			t.Fatalf("commit: %q", s)
		}
		if s, _ := c.load(oid); s != 'O' { // fills the record cache
			t.Fatalf("load: %q", s)
		}
		b := ts.srv.inflight
		b.mu.Lock()
		gcs0, garbage0 := b.collections, b.garbage // the commit's data is garbage
		b.mu.Unlock()
		const loads = 500 // 20 MB of replies, 20 budgets
		for range loads {
			if s, _ := c.load(oid); s != 'O' {
				t.Fatalf("load: %q", s)
			}
		}
		b.mu.Lock()
		gcs, garbage := b.collections-gcs0, b.garbage-garbage0
		b.mu.Unlock()
		if gcs != 0 || garbage != 0 {
			t.Errorf("%d loads of a cached 40 KiB record under a 1 MiB budget: %d collections forced, %d bytes counted as garbage; want none",
				loads, gcs, garbage)
		}
		if used, _ := ts.srv.InflightBytes(); used != 0 {
			t.Errorf("%d bytes still charged after the replies", used)
		}
	})
}
