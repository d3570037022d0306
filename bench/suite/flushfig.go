package main

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The log flush under load: the engine's durusbdb_group_flush_seconds_total
// and durusbdb_group_flushes_total, scraped from a durable server's
// --metrics listener before and after a figure, give the mean time one
// group flush spent writing and syncing the log while that load ran. Beside
// the raw loop's fdatasync on the idle disk (Machine), it says how much of
// a durable commit's wait the disk set in that run.

// flushCounters reads the two counters from the metrics listener maddr.
func flushCounters(maddr string) (secs, flushes float64, err error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + maddr + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("metrics of %s: %w", maddr, err)
	}
	counter := func(name string) (float64, error) {
		f := fams[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetCounter() == nil {
			return 0, fmt.Errorf("metrics of %s: no counter %s", maddr, name)
		}
		return f.GetMetric()[0].GetCounter().GetValue(), nil
	}
	if secs, err = counter("durusbdb_group_flush_seconds_total"); err != nil {
		return 0, 0, err
	}
	if flushes, err = counter("durusbdb_group_flushes_total"); err != nil {
		return 0, 0, err
	}
	return secs, flushes, nil
}

// flushMeter wraps the figures of one durable server with a reading of
// its log flushes: every round's mean flush in µs, kept for the median.
type flushMeter struct {
	s      *suite
	maddr  string
	rounds []float64
}

// wrap returns fig measuring the mean log flush of its load too.
func (m *flushMeter) wrap(fig func(round int) (float64, bool)) func(round int) (float64, bool) {
	return func(round int) (float64, bool) {
		s0, f0, err0 := flushCounters(m.maddr)
		x, ok := fig(round)
		s1, f1, err1 := flushCounters(m.maddr)
		switch {
		case err0 != nil || err1 != nil:
			m.s.logf("  log flush: metrics of %s: %v %v", m.maddr, err0, err1)
		case f1 > f0:
			m.rounds = append(m.rounds, (s1-s0)/(f1-f0)*1e6)
		}
		return x, ok
	}
}

// set records the median of the rounds as row key, column col.
func (m *flushMeter) set(key, col string) {
	if len(m.rounds) == 0 {
		m.s.fail("log flush "+key+" "+col, fmt.Errorf("no round measured the flushes of %s", m.maddr))
		return
	}
	slices.Sort(m.rounds)
	med := m.rounds[len(m.rounds)/2]
	m.s.res.set(key, col, med)
	m.s.logf("  %s %s, rounds %.0f µs: median %.0f µs", key, col, m.rounds, med)
}
