//go:build bdb

package repl

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// BenchmarkReplServerCommit measures durable commits/s at stormConns
// connections (each commit a new 100-byte object and its head) on the
// master of a 3-site group beside the same server standalone; run it
// with -benchtime=1x: each sub-benchmark commits for benchFor.
//
//	go test -tags bdb -run '^$' -bench ReplServerCommit -benchtime=1x ./tests/repl/
func BenchmarkReplServerCommit(b *testing.B) {
	b.Run("standalone", func(b *testing.B) {
		dir := b.TempDir() + "/site"
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		s := startSite(b, "standalone", siteConfig{Dir: dir, Standalone: true})
		testwait.Within(b, time.Minute, "standalone ready", s.isMaster)
		benchCommits(b, s)
	})
	b.Run("3sites", func(b *testing.B) {
		sites := startGroup(b, 3)
		benchCommits(b, sites[0])
	})
}

// benchFor is how long benchCommits commits.
const benchFor = 5 * time.Second

// benchCommits commits from stormConns connections on s for benchFor
// and reports commits/s.
func benchCommits(b *testing.B, s *site) { benchCommitsVia(b, s, s) }

// benchCommitsVia is benchCommits with the root set up on master and the
// commits sent to via (a replica forwards them).
func benchCommitsVia(b *testing.B, master, via *site) {
	heads := setupRoot(b, dial(b, master), stormConns)
	if via != master {
		testwait.Within(b, time.Minute, via.name+" serving the root", func() bool { return loadsRoot(via) })
	}
	addr, _, _, _ := via.state()
	var n atomic.Int64
	stop := time.Now().Add(benchFor)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i, h := range heads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wire.Dial(addr, 10*time.Second)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			data := make([]byte, 100)
			for time.Now().Before(stop) {
				if _, err := commitNew(c, h, data); err != nil {
					b.Errorf("connection %d: %v", i, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(n.Load())/benchFor.Seconds(), "commits/s")
}
