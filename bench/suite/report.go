package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Columns of the table.
var columns = []struct{ key, title string }{
	{"bdb", "durusbdb bdb"},
	{"leveldb", "durusbdb leveldb"},
	{"python", "Durus 4.3 (FileStorage)"},
	{"ceiling", "ceiling"},
}

// row is one line of the table: a measurement with a figure per column.
type row struct {
	key, label, unit string
	lower            bool     // smaller is better (seconds, memory)
	need             []string // columns this row must have (smoke check)
	ceiling          string   // what the ceiling column is for this row
	v                map[string]float64
	text             map[string]string // a cell that is words, not a figure ("not built")
}

// results holds every row in table order.
type results struct {
	rows  map[string]*row
	order []string
}

// newResults declares the rows of this run's scale and sections.
func newResults(s *suite) *results {
	r := &results{rows: map[string]*row{}}
	servers := s.serverCols()
	add := func(key, label, unit string, lower bool, need []string, ceiling string) {
		r.rows[key] = &row{key: key, label: label, unit: unit, lower: lower, need: need, ceiling: ceiling, v: map[string]float64{}, text: map[string]string{}}
		r.order = append(r.order, key)
	}
	none := []string(nil)
	pick := func(cond bool, cols []string) []string {
		if cond {
			return cols
		}
		return none
	}
	srv, ceil := s.sections["servers"], s.sections["ceil"]
	both := func() []string {
		var out []string
		if srv {
			out = append(out, servers...)
		}
		if ceil {
			out = append(out, "ceiling")
		}
		return out
	}
	for _, sz := range []struct{ key, label string }{{"100", "100 B"}, {"10k", "10 KB"}} {
		for _, c := range []int{1, 8} {
			add(fmt.Sprintf("loads%d_%s", c, sz.key), fmt.Sprintf("loads, %d conn%s, %s records, warm", c, plural(c), sz.label),
				"loads/s", false, both(), "trivial Go-map server")
		}
	}
	add("loads8_paired", "loads, 8 conns, 100 B, ÷ the trivial server measured just before and after (median of rounds)", "ratio", false,
		pick(srv && ceil, s.backends), "")
	add("bulk", "bulk loads (B of 100 oids), 8 conns", "oids/s", false, both(), "trivial Go-map server")
	for _, c := range s.commitConns {
		add(fmt.Sprintf("commits%d", c), fmt.Sprintf("commits of 1 small record, %d conn%s, durable (Durus: never fsyncs)", c, plural(c)),
			"commits/s", false, both(), "raw libdb group commit (NOSYNC + shared log_flush)")
	}
	token := "trivial Go-map server with commit token"
	s.commitRows(add, both(), append(pick(srv, s.backends), pick(ceil, []string{"ceiling"})...), token)
	s.pairedCommitRows(add, pick(srv && ceil, s.backends))
	for _, c := range s.commitConns {
		add(fmt.Sprintf("rawsync%d", c), fmt.Sprintf("raw libdb, DB_TXN_SYNC per txn, %d thread%s", c, plural(c)),
			"commits/s", false, pick(ceil, []string{"ceiling"}), "raw libdb DB_TXN_SYNC")
	}
	for _, c := range s.commitConns {
		add(fmt.Sprintf("proto%d", c), fmt.Sprintf("commits through the trivial server, %d conn%s (token phase 1→2, no storage)", c, plural(c)),
			"commits/s", false, pick(ceil, []string{"ceiling"}), token)
	}
	add("fsync", "raw pwrite 4 KiB + fdatasync loop", "syncs/s", false, pick(ceil, []string{"ceiling"}), "disk")
	add("bigcommit", fmt.Sprintf("commit of %s records in one transaction", count(uint64(s.bigRecords))), "records/s", false,
		pick(srv, servers), "")
	add("seed", "seed test, stock Python client (BTree: 65,536 sets, 32,768 deletes)", "s", true, pick(srv, servers), "")
	add("gc_off", "durable commits, 8 conns, collector idle (gc-grace 24h)", "commits/s", false,
		pick(s.sections["gc"], s.backends), "")
	add("gc_on", "durable commits, 8 conns, collector removing every committed record", "commits/s", false,
		pick(s.sections["gc"], s.backends), "")
	add("gc_freed", "  records the collector removed during that run (warm-up included)", "records", false,
		pick(s.sections["gc"], s.backends), "")
	s.stallRows(add, pick(s.sections["stall"], s.backends))
	s.replRows(add, pick(s.sections["repl"] && slices.Contains(s.backends, "bdb"), []string{"bdb"}))
	for _, n := range s.datasets {
		add(fmt.Sprintf("open_%d", n), fmt.Sprintf("open → first load, %s objects", count(n)), "s", true,
			pick(s.sections["open"], servers), "")
	}
	for _, n := range s.datasets {
		add(fmt.Sprintf("rss_%d", n), fmt.Sprintf("server RSS (VmRSS) after random loads, %s objects", count(n)), "MiB", true,
			pick(s.sections["open"], servers), "")
		add(fmt.Sprintf("hwm_%d", n), fmt.Sprintf("server peak RSS (VmHWM), %s objects", count(n)), "MiB", true,
			pick(s.sections["open"], servers), "")
		add(fmt.Sprintf("anon_%d", n), fmt.Sprintf("  of which anonymous (RssAnon; the rest is mapped files/shared regions), %s objects", count(n)), "MiB", true,
			pick(s.sections["open"], servers), "")
	}
	add("migrate", fmt.Sprintf("migrate of a FileStorage (Shelf) of %s records", count(s.migrateCount)), "MB/s", false,
		pick(s.sections["migrate"], append(append([]string(nil), s.backends...), "ceiling")), "raw libdb bulk load of the same records")
	return r
}

// rowAdder declares a row (newResults's add).
type rowAdder func(key, label, unit string, lower bool, need []string, ceiling string)

// commitRows declares issue #18's commit rows: update commits (durable;
// need both: the servers and the ceiling) and new-object and update
// commits with --durability nosync (need nosync), each beside the trivial
// server with its token.
func (s *suite) commitRows(add rowAdder, both, nosync []string, token string) {
	for _, c := range s.commitConns {
		add(fmt.Sprintf("updates%d", c), fmt.Sprintf("update commits (%d B to an existing object), %d conn%s, durable (Durus: never fsyncs)", s.updateSize, c, plural(c)),
			"commits/s", false, both, token)
	}
	for _, kind := range []struct{ key, label string }{{"commits", "commits of 1 small record (new object)"}, {"updates", fmt.Sprintf("update commits (%d B)", s.updateSize)}} {
		for _, c := range s.commitConns {
			add(fmt.Sprintf("nosync_%s%d", kind.key, c), fmt.Sprintf("%s, %d conn%s, --durability nosync", kind.label, c, plural(c)),
				"commits/s", false, nosync, token)
		}
	}
}

// stallRows declares the commit latency rows during collection (need
// stall: the backends, when the section runs).
func (s *suite) stallRows(add rowAdder, stall []string) {
	for _, ph := range []struct{ key, label string }{
		{"stall_idle", "collector idle"},
		{"stall_rc", fmt.Sprintf("reference-count collector removing %s garbage records", count(s.gcObjects/10))},
		{"stall_full", "gc --full"},
	} {
		for _, p := range []string{"p50", "p99", "max"} {
			add(ph.key+"_"+p, fmt.Sprintf("update commit latency %s, 8 conns, durable, %s-object database, %s", p, count(s.gcObjects), ph.label),
				"ms", true, stall, "")
		}
		if ph.key != "stall_idle" {
			add(ph.key+"_secs", "  duration of that collection", "s", true, stall, "")
		}
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// count formats an object count as 1k, 100k, 1M, 10M.
func count(n uint64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// set records the figure of row key in column col.
func (r *results) set(key, col string, v float64) {
	if row, ok := r.rows[key]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
		row.v[col] = v
	}
}

// setText records a cell of words in place of a figure, such as "not
// built" for a measurement whose feature is missing: the row stays in the
// table and counts as produced.
func (r *results) setText(key, col, text string) {
	if row, ok := r.rows[key]; ok {
		row.text[col] = text
	}
}

// setMax records v unless the row already holds a higher figure in col.
func (r *results) setMax(key, col string, v float64) {
	if old, ok := r.get(key, col); ok && old >= v {
		return
	}
	r.set(key, col, v)
}

// get returns the figure and whether it exists.
func (r *results) get(key, col string) (float64, bool) {
	row, ok := r.rows[key]
	if !ok {
		return 0, false
	}
	v, ok := row.v[col]
	return v, ok
}

// missing lists the expected figures that were not produced.
func (r *results) missing() []string {
	var out []string
	for _, k := range r.order {
		row := r.rows[k]
		for _, c := range row.need {
			_, ok := row.v[c]
			if _, words := row.text[c]; !ok && !words {
				out = append(out, row.label+" ["+c+"]")
			}
		}
	}
	return out
}

// format prints a figure in its unit.
func format(v float64, unit string) string {
	switch unit {
	case "s":
		if v < 10 {
			return fmt.Sprintf("%.3f", v)
		}
		return fmt.Sprintf("%.1f", v)
	case "MiB", "MB/s":
		return fmt.Sprintf("%.1f", v)
	case "ratio", "ms":
		return fmt.Sprintf("%.2f", v)
	}
	return thousands(int64(math.Round(v)))
}

// thousands formats n with commas.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ratio formats a/b.
func ratio(r *results, key, a, b string) string {
	x, ok1 := r.get(key, a)
	y, ok2 := r.get(key, b)
	if !ok1 || !ok2 || y == 0 {
		return ""
	}
	q := x / y
	if q >= 100 {
		return fmt.Sprintf("%.0f×", q)
	}
	if q >= 10 {
		return fmt.Sprintf("%.1f×", q)
	}
	return fmt.Sprintf("%.2f×", q)
}

// report is the rendered output.
type report struct {
	table, targets, machine string
}

func (s *suite) report() report {
	var t strings.Builder
	fmt.Fprintln(&t, "| measurement | unit | durusbdb bdb | durusbdb leveldb | Durus 4.3 (FileStorage) | ceiling | bdb ÷ Durus | leveldb ÷ Durus | bdb ÷ ceiling | ceiling is |")
	fmt.Fprintln(&t, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, k := range s.res.order {
		row := s.res.rows[k]
		if len(row.v) == 0 && len(row.text) == 0 && len(row.need) == 0 {
			continue
		}
		unit := row.unit
		if row.lower {
			unit += " (lower is better)"
		}
		fmt.Fprintf(&t, "| %s | %s |", row.label, unit)
		for _, c := range columns {
			if v, ok := row.v[c.key]; ok {
				fmt.Fprintf(&t, " %s |", format(v, row.unit))
			} else if w, ok := row.text[c.key]; ok {
				fmt.Fprintf(&t, " %s |", w)
			} else {
				fmt.Fprint(&t, " — |")
			}
		}
		ceil := ""
		if _, ok := row.v["ceiling"]; ok {
			ceil = row.ceiling
		}
		fmt.Fprintf(&t, " %s | %s | %s | %s |\n", ratio(s.res, k, "bdb", "python"), ratio(s.res, k, "leveldb", "python"),
			ratio(s.res, k, "bdb", "ceiling"), ceil)
	}
	return report{table: t.String(), targets: s.targets(), machine: s.machine.describe(s)}
}

// verdict is one cell of the targets table: the figure, whether the
// target is met, whether it was measured at all.
type verdict struct {
	fig   string
	ok    bool
	known bool
}

// targets renders the verdict on each performance target, for each
// durusbdb backend.
func (s *suite) targets() string {
	var b strings.Builder
	fmt.Fprintln(&b, "| target | durusbdb bdb | durusbdb leveldb |")
	fmt.Fprintln(&b, "|---|---|---|")
	r := s.res
	cell := func(v verdict) string {
		if !v.known {
			return "n/a (not measured)"
		}
		if v.ok {
			return v.fig + ": met"
		}
		return v.fig + ": **missed**"
	}
	line := func(target string, f func(col string) verdict) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, cell(f("bdb")), cell(f("leveldb")))
	}
	q := func(key, a, bcol string) (float64, bool) {
		x, ok1 := r.get(key, a)
		y, ok2 := r.get(key, bcol)
		if !ok1 || !ok2 || y == 0 {
			return 0, false
		}
		return x / y, true
	}
	pc := func(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }
	xf := func(x float64) string { return fmt.Sprintf("%.1f×", x) }
	line("single-oid loads/s at 8 conns ≥ 90% of the trivial server (alternating runs; in brackets: the figures of the table, taken minutes apart)", func(col string) verdict {
		x, ok := r.get("loads8_paired", col)
		y, ok2 := q("loads8_100", col, "ceiling")
		return pairedVerdict([]string{pc(x)}, x >= 0.9, ok, []string{pc(y)}, y >= 0.9, ok2)
	})
	line("bulk loads ≥ 10× Durus", func(col string) verdict {
		x, ok := q("bulk", col, "python")
		return verdict{xf(x), x >= 10, ok}
	})
	line("durable commits/s at 8 conns ≥ 3× Durus's non-durable rate", func(col string) verdict {
		x, ok := q("commits8", col, "python")
		return verdict{xf(x), x >= 3, ok}
	})
	line("durable commits/s at 8 conns ≥ 90% of raw libdb group commit", func(col string) verdict {
		x, ok := q("commits8", col, "ceiling")
		return verdict{pc(x), x >= 0.9, ok}
	})
	info := func(target string, f func(col string) (string, bool)) {
		cellOf := func(col string) string {
			if fig, ok := f(col); ok {
				return fig + " (information)"
			}
			return "n/a (not measured)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", target, cellOf("bdb"), cellOf("leveldb"))
	}
	info("durable commits/s at 8 conns ÷ trivial server with commit token (issue #18's reference; not a hard ceiling: nosync rows exceed it)", func(col string) (string, bool) {
		x, ok1 := r.get("commits8", col)
		y, ok2 := r.get("proto8", "ceiling")
		return pc(x / y), ok1 && ok2 && y > 0
	})
	// The same rounds against the durable trivial server, so that a
	// durable row's miss is split into what the disk leaves of the
	// protocol's ceiling (paired_durceil) and what durusbdb costs.
	for _, k := range []struct{ key, label string }{{"commits", "new-object commits"}, {"updates", "update commits"}} {
		info(fmt.Sprintf("%s, durable, at 8 and 32 conns ÷ the durable trivial server in the same rounds (the durable trivial server itself: %s)", k.label, s.durceilText(k.key, pc)), func(col string) (string, bool) {
			var figs []string
			for _, c := range pairedCommitConns {
				x, ok := r.get(fmt.Sprintf("paired_vsdur_%s%d", k.key, c), col)
				if !ok {
					return "", false
				}
				figs = append(figs, pc(x))
			}
			return strings.Join(figs, ", "), true
		})
	}
	s.issue18Targets(line, pc)
	s.replTargets(line, pc)
	line("≥ 20,000 durable commits/s at 8 conns", func(col string) verdict {
		v, ok := r.get("commits8", col)
		return verdict{thousands(int64(v)) + "/s", v >= 20000, ok}
	})
	line("migrate ≥ 60% of raw libdb bulk load", func(col string) verdict {
		x, ok := q("migrate", col, "ceiling")
		return verdict{pc(x), x >= 0.6, ok}
	})
	s.scaleTargets(line)
	return b.String()
}

// scaleTargets adds the targets of the large data sets (open time, memory)
// and of the background collector's cost to the Targets table.
func (s *suite) scaleTargets(line func(target string, f func(col string) verdict)) {
	r := s.res
	if len(s.datasets) >= 2 {
		lo, hi := s.datasets[0], s.datasets[len(s.datasets)-1]
		line(fmt.Sprintf("open → first load flat (within 2×) from %s to %s objects", count(lo), count(hi)), func(col string) verdict {
			a, ok1 := r.get(fmt.Sprintf("open_%d", hi), col)
			c, ok2 := r.get(fmt.Sprintf("open_%d", lo), col)
			return verdict{fmt.Sprintf("%.3f s → %.3f s (%.2f×)", c, a, a/c), a <= 2*c, ok1 && ok2}
		})
	}
	if len(s.datasets) > 0 {
		hi := s.datasets[len(s.datasets)-1]
		limit := float64(s.cacheSize)/(1<<20) + 64
		line(fmt.Sprintf("RSS at %s objects ≤ configured cache (%d MiB) + 64 MB", count(hi), s.cacheSize>>20), func(col string) verdict {
			v, ok := r.get(fmt.Sprintf("rss_%d", hi), col)
			h, _ := r.get(fmt.Sprintf("hwm_%d", hi), col)
			a, _ := r.get(fmt.Sprintf("anon_%d", hi), col)
			return verdict{fmt.Sprintf("VmRSS %.0f MiB (anon %.0f, peak %.0f; limit %.0f)", v, a, h, limit), v <= limit, ok}
		})
	}
	line("background GC costs ≤ 20% of commit throughput (8 conns)", func(col string) verdict {
		on, ok1 := r.get("gc_on", col)
		off, ok2 := r.get("gc_off", col)
		return verdict{fmt.Sprintf("%.0f%% (%s vs %s/s)", 100*(1-on/off), thousands(int64(on)), thousands(int64(off))),
			1-on/off <= 0.2, ok1 && ok2 && off > 0}
	})
}

// machine describes where the run happened.
type machine struct {
	nproc                 int
	memTotal              string
	cpu, kernel           string
	fsyncP50us, fsyncRate float64
	loadBefore, loadAfter string
	date                  time.Time
	elapsed               time.Duration
	migrateMB             float64
}

func probeMachine() machine {
	m := machine{nproc: runtime.NumCPU(), date: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscan(strings.TrimPrefix(l, "MemTotal:"), &kb)
				m.memTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (m machine) describe(s *suite) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- date: %s (run took %s)\n", m.date.Format("2006-01-02 15:04 UTC"), m.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "- CPU: %s, nproc %d; memory %s; kernel %s; %s\n", m.cpu, m.nproc, m.memTotal, m.kernel, runtime.Version())
	if m.fsyncRate > 0 {
		fmt.Fprintf(&b, "- disk: pwrite 4 KiB + fdatasync p50 %.0f µs (%s syncs/s, raw loop)\n", m.fsyncP50us, thousands(int64(m.fsyncRate)))
	}
	fmt.Fprintf(&b, "- load average (1/5/15 min) before the measurements: %s; after: %s\n", m.loadBefore, m.loadAfter)
	fmt.Fprintf(&b, "- scale %s: %v measured per figure after %v warm-up; servers' cache %d MiB; durusbdb durability sync, "+
		"collector idle (gc-grace 24h) except in the GC rows; load generator in the driver process on the same machine%s; "+
		"ceilings measured first and last, the higher figure kept\n",
		s.scale, s.dur, s.warm, s.cacheSize>>20, clientSysmonNote())
	if m.migrateMB > 0 {
		fmt.Fprintf(&b, "- migrate source: generated Shelf file of %.0f MB\n", m.migrateMB)
	}
	return b.String()
}

// Markers of the generated part of PERFORMANCE.md; the rest of the file is
// written by hand and kept.
const (
	beginMark = "<!-- bench:begin (generated by scripts/bench.sh; edits inside are overwritten) -->"
	endMark   = "<!-- bench:end -->"
)

// writeDocs writes PERFORMANCE.md (replacing only the generated part) and
// performance.png into s.out.
func (s *suite) writeDocs(rep report) error {
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		return err
	}
	png := filepath.Join(s.out, "performance.png")
	if err := s.chart(png); err != nil {
		s.fail("chart", err)
	}
	var g strings.Builder
	fmt.Fprintln(&g, beginMark)
	fmt.Fprintln(&g)
	fmt.Fprintln(&g, "### Machine")
	fmt.Fprintln(&g)
	fmt.Fprint(&g, rep.machine)
	fmt.Fprintln(&g)
	fmt.Fprintln(&g, "### Figures")
	fmt.Fprintln(&g)
	fmt.Fprintln(&g, "Ratios are durusbdb ÷ the other column in the row's unit (for rows marked *lower is better*, below 1× is better).")
	fmt.Fprintln(&g, "Durus 4.3's FileStorage never fsyncs a commit, so its commit figures are not durable; durusbdb's are (one fdatasync per group).")
	fmt.Fprintln(&g)
	fmt.Fprint(&g, rep.table)
	fmt.Fprintln(&g)
	fmt.Fprintln(&g, "### Targets")
	fmt.Fprintln(&g)
	fmt.Fprint(&g, rep.targets)
	fmt.Fprintln(&g)
	if len(s.errs) > 0 {
		fmt.Fprintln(&g, "Failed figures in this run:")
		fmt.Fprintln(&g)
		for _, e := range s.errs {
			fmt.Fprintf(&g, "- %s\n", e)
		}
		fmt.Fprintln(&g)
	}
	fmt.Fprintln(&g, "![commits/s vs connections, loads/s](performance.png)")
	fmt.Fprintln(&g)
	fmt.Fprintln(&g, endMark)

	path := filepath.Join(s.out, "PERFORMANCE.md")
	old, err := os.ReadFile(path)
	var doc []byte
	if err == nil && bytes.Contains(old, []byte(beginMark)) && bytes.Contains(old, []byte(endMark)) {
		i := bytes.Index(old, []byte(beginMark))
		j := bytes.Index(old, []byte(endMark)) + len(endMark)
		doc = append(append(append([]byte(nil), old[:i]...), strings.TrimSuffix(g.String(), "\n")...), old[j:]...)
	} else {
		doc = []byte("# durusbdb performance\n\n" + g.String())
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		return err
	}
	s.logf("wrote %s and %s", path, png)
	return nil
}

// pairedCommitRows declares the rows of pairedCommits: issue #18's commit
// rows at 8 and 32 connections as ratios to the trivial server with
// commit token measured just before and after.
func (s *suite) pairedCommitRows(add rowAdder, need []string) {
	for _, prefix := range []string{"", "nosync_"} {
		dur := "durable"
		if prefix != "" {
			dur = "--durability nosync"
		}
		for _, kind := range s.pairedKinds() {
			label := "new-object commits"
			if kind.key == "updates" {
				label = fmt.Sprintf("update commits (%d B)", kind.size)
			}
			for _, c := range pairedCommitConns {
				add(fmt.Sprintf("paired_%s%s%d", prefix, kind.key, c),
					fmt.Sprintf("%s, %d conns, %s, ÷ the trivial server with commit token just before and after (median of rounds)", label, c, dur),
					"ratio", false, need, "")
				if prefix != "" {
					continue
				}
				ceilNeed := []string(nil)
				if len(need) > 0 {
					ceilNeed = []string{"ceiling"}
				}
				add(fmt.Sprintf("paired_durceil_%s%d", kind.key, c),
					"  the durable trivial server (the token, then one group write + fdatasync of its log before each 'O'; no storage) ÷ the same trivial server without it, same rounds: what the disk leaves of the protocol's ceiling",
					"ratio", false, ceilNeed, "trivial Go-map server, durable")
				add(fmt.Sprintf("paired_vsdur_%s%d", kind.key, c),
					"  durusbdb's durable figure ÷ the durable trivial server's, same round (median of rounds): what the storage engine costs",
					"ratio", false, need, "")
			}
			if prefix == "" {
				add(fmt.Sprintf("flush_%s%d", kind.key, flushConns),
					fmt.Sprintf("  the log flush (write + fdatasync) of a group during those %d-conn durable commits, mean (median of rounds; the idle disk's raw fdatasync: Machine)", flushConns),
					"µs", true, need, "")
				add(fmt.Sprintf("paired_%s1", kind.key),
					fmt.Sprintf("%s, 1 conn, durable, ÷ 1 / (the trivial server's round trip + one fdatasync), both measured just before and after (median of rounds)", label),
					"ratio", false, need, "")
			}
		}
	}
}

// durceilText is the durable trivial server's ratios to the trivial
// server for commit kind key at 8 and 32 connections, for a target line.
func (s *suite) durceilText(key string, pc func(float64) string) string {
	var figs []string
	for _, c := range pairedCommitConns {
		if x, ok := s.res.get(fmt.Sprintf("paired_durceil_%s%d", key, c), "ceiling"); ok {
			figs = append(figs, fmt.Sprintf("%s at %d conns", pc(x), c))
		}
	}
	if len(figs) == 0 {
		return "not measured"
	}
	return strings.Join(figs, ", ") + " of the trivial server"
}

// atLeast returns the figures of rows keys in column col formatted by pc,
// whether every one present is at least want, and whether all are present.
func (r *results) atLeast(keys []string, col string, want float64, pc func(float64) string) (figs []string, ok, known bool) {
	ok, known = true, true
	for _, k := range keys {
		x, present := r.get(k, col)
		if !present {
			known = false
			continue
		}
		figs = append(figs, pc(x))
		ok = ok && x >= want
	}
	return figs, ok, known
}

// pairedVerdict is the verdict of a target judged on its paired figures
// when the run has them all (the table's in brackets), else on the
// table's figures.
func pairedVerdict(paired []string, pairedOK, pairedKnown bool, table []string, tableOK, tableKnown bool) verdict {
	if !pairedKnown {
		return verdict{strings.Join(table, ", "), tableOK, tableKnown}
	}
	return verdict{fmt.Sprintf("%s (%s)", strings.Join(paired, ", "), strings.Join(table, ", ")), pairedOK, true}
}

// issue18Targets adds the verdicts of issue #18: commits against the
// token-ceiling trivial server (≥ 85% durable, ≥ 90% nosync, at 8 and 32
// connections, new-object and update commits) and commit p99 during a
// collection (≤ 3× idle and never above 100 ms).
func (s *suite) issue18Targets(line func(string, func(string) verdict), pc func(float64) string) {
	r := s.res
	for _, k := range []struct{ key, label string }{
		{"commits", "new-object commits"}, {"updates", "update commits"},
		{"nosync_commits", "new-object commits, nosync"}, {"nosync_updates", "update commits, nosync"},
	} {
		want := 0.85
		if strings.HasPrefix(k.key, "nosync") {
			want = 0.9
		}
		line(fmt.Sprintf("%s at 8 and 32 conns ≥ %.0f%% of the trivial server with commit token (alternating runs; in brackets: the figures of the table, taken minutes apart)", k.label, 100*want), func(col string) verdict {
			var keys, table []string
			for _, c := range pairedCommitConns {
				keys = append(keys, fmt.Sprintf("paired_%s%d", k.key, c))
			}
			paired, pairedOK, pairedKnown := r.atLeast(keys, col, want, pc)
			tableOK, tableKnown := true, true
			for _, c := range pairedCommitConns {
				x, ok1 := r.get(fmt.Sprintf("%s%d", k.key, c), col)
				ceilKey := fmt.Sprintf("%s%d", k.key, c)
				if k.key == "commits" {
					ceilKey = fmt.Sprintf("proto%d", c)
				}
				y, ok2 := r.get(ceilKey, "ceiling")
				if !ok1 || !ok2 || y == 0 {
					tableKnown = false
					continue
				}
				table = append(table, pc(x/y))
				tableOK = tableOK && x/y >= want
			}
			return pairedVerdict(paired, pairedOK, pairedKnown, table, tableOK, tableKnown)
		})
	}
	// One connection, durable: within 90% of one token round trip (the
	// trivial server's 1-connection commit rate) plus one fdatasync (the
	// raw loop), both measured in the same run: the paired rows (both
	// measured just before and after each figure) when the run has them,
	// the table's figures against the ceilings in brackets.
	line("commits at 1 conn, durable (new-object, update) ≥ 90% of 1 / (token round trip + one fdatasync) (alternating runs; in brackets: the table's figures against the ceilings)", func(col string) verdict {
		var table []string
		tableOK, tableKnown := true, false
		rt, ok1 := r.get("proto1", "ceiling")
		fs, ok2 := r.get("fsync", "ceiling")
		if ok1 && ok2 && rt > 0 && fs > 0 {
			ref := 1 / (1/rt + 1/fs)
			tableKnown = true
			for _, k := range []string{"commits1", "updates1"} {
				x, okx := r.get(k, col)
				if !okx {
					tableKnown = false
					continue
				}
				table = append(table, pc(x/ref))
				tableOK = tableOK && x/ref >= 0.9
			}
			if len(table) > 0 {
				table[len(table)-1] += fmt.Sprintf(" of %.0f/s", ref)
			}
		}
		paired, pairedOK, pairedKnown := r.atLeast([]string{"paired_commits1", "paired_updates1"}, col, 0.9, pc)
		return pairedVerdict(paired, pairedOK, pairedKnown, table, tableOK, tableKnown)
	})
	for _, ph := range []struct{ key, label string }{{"stall_rc", "the reference-count collector removes garbage"}, {"stall_full", "gc --full"}} {
		line(fmt.Sprintf("commit p99 while %s ≤ 3× idle p99 and ≤ 100 ms (%s objects)", ph.label, count(s.gcObjects)), func(col string) verdict {
			idle, ok1 := r.get("stall_idle_p99", col)
			p99, ok2 := r.get(ph.key+"_p99", col)
			mx, _ := r.get(ph.key+"_max", col)
			return verdict{fmt.Sprintf("%.1f ms (%.1f×; max %.0f ms) vs idle %.1f ms", p99, p99/idle, mx, idle), p99 <= 3*idle && p99 <= 100, ok1 && ok2 && idle > 0}
		})
	}
}
