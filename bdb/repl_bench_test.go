//go:build bdb

package bdb_test

import (
	"strconv"
	"strings"
	"testing"
)

// BenchmarkReplCommit measures durable commits/s on the master of a group
// of three site processes on this machine (QUORUM acks, replicas fsync)
// beside the same process standalone, with 1 and 8 goroutines, for each
// socket/batching configuration. Mode "group" is the engine's apply run
// (every waiting commit in one DB_TXN_NOSYNC transaction, one log flush);
// "txn" is one DB_TXN_SYNC transaction per commit. The figure is the
// "commits/s" metric, measured inside the master.
func BenchmarkReplCommit(b *testing.B) {
	configs := []struct {
		name string
		tune func(*siteConfig)
	}{
		{"standalone", nil},
		{"nodelay+bulk", func(*siteConfig) {}},
		{"bulk", func(c *siteConfig) { c.NoDelay = true }},
		{"nodelay", func(c *siteConfig) { c.NoBulk = true }},
		{"stock", func(c *siteConfig) { c.NoDelay, c.NoBulk = true, true }},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			var m *siteProc
			if c.tune == nil {
				m = startSite(b, "standalone", siteConfig{Dir: b.TempDir(), Standalone: true})
			} else {
				m = startGroup(b, 3, c.tune)[0]
			}
			for _, mode := range []string{"group", "txn"} {
				for _, g := range []int{1, 8} {
					b.Run(mode+"/"+strconv.Itoa(g), func(b *testing.B) {
						got := m.do("bench %s %d %d", mode, g, b.N)
						rate, ok := strings.CutPrefix(got, "rate ")
						if !ok {
							b.Fatalf("bench: %s", got)
						}
						v, _ := strconv.ParseFloat(rate, 64)
						b.ReportMetric(v, "commits/s")
					})
				}
			}
		})
	}
}
