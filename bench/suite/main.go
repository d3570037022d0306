// Command suite is durusbdb's performance benchmark driver (run it through
// scripts/bench.sh or scripts/bench-smoke.sh). It starts, one after another
// on loopback ports and each on a fresh database, `durusbdb serve` with the
// Berkeley DB backend, `durusbdb serve` with the LevelDB backend and Durus
// 4.3's own `durus -s` (FileStorage), measures each with a raw-protocol
// load generator and with the stock Python client, measures the ceilings
// of the machine in the same run (bench/trivial, a Go-map server with the
// same framing; bench/commitc, raw libdb and raw fdatasync), a 3-site
// Berkeley DB replication group (repl.go: commits on the master beside
// standalone, loads on a replica, failover time), and writes one
// markdown table with ratios, the target verdicts and the machine
// description into PERFORMANCE.md, and a PNG chart beside it.
//
// Configuration comes from the environment (see scripts/bench.sh):
//
//	BENCH_SCALE     full (default), short or smoke
//	BENCH_DURATION  measured time per figure (default 5s full, 1s short, 0.5s smoke)
//	BENCH_CACHE     cache of generated databases (default ~/.cache/durusbdb-bench)
//	BENCH_SECTIONS  comma list of ceil,servers,gc,stall,repl,open,migrate (default all)
//	BENCH_PROFILE   1: run the bdb server under bench/suite/profserve and
//	                write CPU profiles and their top functions to the work dir
//	BENCH_CLIENT_SYSMON  park: leave the driver's (the load generator's) Go
//	                runtime as it starts; by default it re-executes itself
//	                with sysmon kept awake (sysmon.go)
//
// and binaries and the size of the collector-stall database (-gc-objects)
// from flags. Every server process is ended on every exit
// path; their ids are kept in -pidfile for the calling script's trap.
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
)

// suite is one benchmark run.
type suite struct {
	scale    string
	dur      time.Duration // measured time per figure
	warm     time.Duration // warm-up before each figure
	cache    string        // generated databases, kept between runs
	work     string        // this run's databases and logs
	out      string        // directory of PERFORMANCE.md and performance.png
	sections map[string]bool
	profile  bool
	check    bool // fail unless every expected figure was produced

	durusbdb, trivial, commitc, profserve string
	python, durus                         string
	backends                              []string

	// sizes of this scale
	objs100, objs10k int      // populated records for the load figures
	datasets         []uint64 // object counts of the open/RSS figures
	migrateCount     uint64   // records of the migrate source file
	bigRecords       int      // records of the big commit
	commitConns      []int
	updateSize       int    // data bytes of an update commit
	gcObjects        uint64 // objects of the database the stall figures collect
	cacheSize        int64  // the servers' configured cache (bytes)
	replRounds       int    // failover rounds of the repl section

	ps      *procs
	res     *results
	machine machine
	logw    io.Writer
	errs    []string
}

func main() {
	s := &suite{logw: os.Stderr}
	var pidFile string
	flag.StringVar(&s.durusbdb, "durusbdb", "bin/durusbdb", "durusbdb binary (built with -tags bdb)")
	flag.StringVar(&s.trivial, "trivial", "", "bench/trivial binary")
	flag.StringVar(&s.commitc, "commitc", "", "bench/commitc binary")
	flag.StringVar(&s.profserve, "profserve", "", "bench/suite/profserve binary (BENCH_PROFILE=1)")
	flag.StringVar(&s.python, "python", ".venv/bin/python", "Python with Durus 4.3 (default: the repository's .venv, scripts/install-deps.sh)")
	flag.StringVar(&s.durus, "durus", ".venv/bin/durus", "Durus 4.3's durus command")
	flag.StringVar(&s.work, "work", "", "work directory (databases, logs)")
	flag.StringVar(&s.out, "out", "docs", "directory for PERFORMANCE.md and performance.png")
	flag.StringVar(&pidFile, "pidfile", "", "keep the ids of running servers in this file")
	flag.Uint64Var(&s.gcObjects, "gc-objects", 0, "objects of the database the commit-latency-during-collection figures use (0: by scale, 1M full, 100k short, 2k smoke)")
	flag.BoolVar(&s.check, "check", false, "exit 1 unless every expected figure was produced (smoke test)")
	flag.Parse()
	childEnv, err := keepSysmonAwake()
	if err != nil {
		fmt.Fprintln(os.Stderr, "suite: the load generator's sysmon is not kept awake:", err)
	}
	if err := s.configure(); err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(2)
	}
	s.ps = newProcs(pidFile, childEnv)
	// End the servers on SIGINT/SIGTERM too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		s.logf("interrupted: stopping servers")
		s.ps.stopAll()
		os.Exit(130)
	}()
	err = s.run()
	s.ps.stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
}

// envDuration reads a duration from the environment.
func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a duration", name, v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// applyScale sets the sizes of s.scale (BENCH_SCALE) and returns its
// default duration per figure.
func (s *suite) applyScale() (time.Duration, error) {
	var def time.Duration
	switch s.scale {
	case "full":
		def, s.warm = 5*time.Second, time.Second
		s.objs100, s.objs10k = 10000, 2000
		s.datasets = []uint64{100_000, 1_000_000, 10_000_000}
		s.migrateCount = 1_000_000 // about 1 GB
		s.bigRecords = 10000
		s.gcObjects = cmp.Or(s.gcObjects, 1_000_000)
		s.replRounds = 10
	case "short":
		def, s.warm = time.Second, 300*time.Millisecond
		s.objs100, s.objs10k = 5000, 1000
		s.datasets = []uint64{10_000, 100_000}
		s.migrateCount = 50_000
		s.bigRecords = 10000
		s.gcObjects = cmp.Or(s.gcObjects, 100_000)
		s.replRounds = 5
	case "smoke":
		def, s.warm = 500*time.Millisecond, 100*time.Millisecond
		s.objs100, s.objs10k = 1000, 200
		s.datasets = []uint64{1000}
		s.migrateCount = 2000
		s.bigRecords = 10000
		s.gcObjects = cmp.Or(s.gcObjects, 2000)
		s.replRounds = 3
	default:
		return 0, fmt.Errorf("BENCH_SCALE=%q: want full, short or smoke", s.scale)
	}
	return def, nil
}

// parseSections reads BENCH_SECTIONS (default: all) into s.sections.
func (s *suite) parseSections() error {
	s.sections = map[string]bool{}
	secs := os.Getenv("BENCH_SECTIONS")
	if secs == "" {
		secs = "ceil,servers,gc,stall,repl,open,migrate"
	}
	for _, x := range strings.Split(secs, ",") {
		switch x = strings.TrimSpace(x); x {
		case "ceil", "servers", "gc", "stall", "repl", "open", "migrate":
			s.sections[x] = true
		case "":
		default:
			return fmt.Errorf("BENCH_SECTIONS: unknown section %q", x)
		}
	}
	return nil
}

// configure reads the environment and sets the sizes of the scale.
func (s *suite) configure() error {
	s.scale = os.Getenv("BENCH_SCALE")
	if s.scale == "" {
		s.scale = "full"
	}
	def, err := s.applyScale()
	if err != nil {
		return err
	}
	if s.dur, err = envDuration("BENCH_DURATION", def); err != nil {
		return err
	}
	s.commitConns = []int{1, 8, 32}
	s.updateSize = 200
	s.cacheSize = 64 << 20
	s.cache = os.Getenv("BENCH_CACHE")
	if s.cache == "" {
		home, _ := os.UserHomeDir()
		s.cache = filepath.Join(home, ".cache", "durusbdb-bench")
	}
	s.cache = filepath.Join(s.cache, "v1")
	if err := s.parseSections(); err != nil {
		return err
	}
	s.profile = os.Getenv("BENCH_PROFILE") == "1"
	if s.profile && s.profserve == "" {
		return fmt.Errorf("BENCH_PROFILE=1 needs -profserve")
	}
	if s.work == "" {
		if s.work, err = os.MkdirTemp("", "durusbdb-bench-"); err != nil {
			return err
		}
	}
	for _, p := range []*string{&s.durusbdb, &s.trivial, &s.commitc, &s.profserve, &s.work, &s.out} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return err
			}
		}
	}
	for _, p := range []*string{&s.python, &s.durus} { // a bare name is looked up in PATH
		if strings.ContainsRune(*p, '/') {
			if *p, err = filepath.Abs(*p); err != nil {
				return err
			}
		}
	}
	if s.trivial == "" || s.commitc == "" {
		return fmt.Errorf("-trivial and -commitc are required")
	}
	return nil
}

// logf prints a progress line to stderr.
func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.logw, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

// fail records a figure that could not be produced; the run goes on.
func (s *suite) fail(what string, err error) {
	msg := fmt.Sprintf("%s: %v", what, err)
	s.errs = append(s.errs, msg)
	s.logf("FAILED %s", msg)
}

// logPath is the log file of a named step in the work directory.
func (s *suite) logPath(name string) string {
	return filepath.Join(s.work, "log-"+name+".txt")
}

// prepare builds the generated databases and the migrate source first,
// so that building them never overlaps a measurement.
func (s *suite) prepare() (sets []*dataset, migSrc string, stallSet *dataset) {
	if s.sections["stall"] {
		s.logf("data set of %d objects (commit latency during collection)", s.gcObjects)
		var err error
		if stallSet, err = s.buildDataset(s.gcObjects); err != nil {
			s.fail(fmt.Sprintf("data set %d", s.gcObjects), err)
		}
	}
	if s.sections["open"] {
		for _, n := range s.datasets {
			s.logf("data set of %d objects", n)
			ds, err := s.buildDataset(n)
			if err != nil {
				s.fail(fmt.Sprintf("data set %d", n), err)
				continue
			}
			sets = append(sets, ds)
		}
	}
	if s.sections["migrate"] {
		migSrc = filepath.Join(s.cache, fmt.Sprintf("migrate-%d.durus", s.migrateCount))
		s.logf("migrate source of %d records", s.migrateCount)
		if _, err := writeShelf(migSrc, s.migrateCount, true); err != nil {
			s.fail("migrate source", err)
			migSrc = ""
		}
	}
	return sets, migSrc, stallSet
}

// finish prints and writes the report and, with -check, fails on a
// missing row.
func (s *suite) finish() error {
	report := s.report()
	fmt.Println(report.table)
	fmt.Println(report.targets)
	if err := s.writeDocs(report); err != nil {
		return err
	}
	if len(s.errs) > 0 {
		fmt.Fprintf(os.Stderr, "%d figures failed:\n  %s\n", len(s.errs), strings.Join(s.errs, "\n  "))
	}
	if s.check {
		missing := s.res.missing()
		if len(missing) > 0 || len(s.errs) > 0 {
			return fmt.Errorf("smoke check: %d figures missing: %s", len(missing), strings.Join(missing, "; "))
		}
		s.logf("smoke check: all %d rows produced", len(s.res.order))
	}
	return nil
}

func (s *suite) run() error {
	if err := os.MkdirAll(s.work, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(s.cache, 0o755); err != nil {
		return err
	}
	out, _, err := s.ps.runCmd(time.Minute, s.logPath("version"), s.durusbdb, "version")
	if err != nil {
		return err
	}
	for _, b := range []string{"bdb", "leveldb"} {
		if strings.Contains(out, b) {
			s.backends = append(s.backends, b)
		}
	}
	s.res = newResults(s)
	s.machine = probeMachine()
	s.logf("scale %s, %v per figure, work %s, cache %s", s.scale, s.dur, s.work, s.cache)
	start := time.Now()

	sets, migSrc, stallSet := s.prepare()
	s.machine.loadBefore = loadAvg()

	if s.sections["ceil"] {
		s.ceilings()
	}
	if s.sections["servers"] {
		for _, col := range s.serverCols() {
			s.serverFigures(col)
		}
		for _, col := range s.backends {
			s.nosyncFigures(col)
		}
		if s.sections["ceil"] {
			s.pairedLoads()
			s.pairedCommits()
		}
	}
	if s.sections["gc"] {
		for _, b := range s.backends {
			s.gcFigures(b)
		}
	}
	if s.sections["stall"] && stallSet != nil {
		for _, b := range s.backends {
			s.stallFigures(b, stallSet)
		}
	}
	if s.sections["repl"] && slices.Contains(s.backends, "bdb") {
		s.replFigures()
	}
	if s.sections["open"] {
		for _, ds := range sets {
			for _, col := range s.serverCols() {
				s.openFigures(col, ds)
			}
		}
	}
	if s.sections["migrate"] && migSrc != "" {
		s.migrateFigures(migSrc)
	}
	if s.sections["ceil"] {
		s.logf("ceilings, second pass")
		s.ceilings()
	}
	s.machine.loadAfter = loadAvg()
	s.machine.elapsed = time.Since(start)

	return s.finish()
}

// serverCols are the measured servers: durusbdb per backend, then Durus.
func (s *suite) serverCols() []string {
	return append(append([]string(nil), s.backends...), "python")
}

// server is one running server under test.
type server struct {
	col  string
	p    *proc
	addr string
}

// startServer starts the server of column col on path (a directory for
// durusbdb, a file for Durus) on a free port and waits until it listens.
// label names the log and, when profiling, the profile.
func (s *suite) startServer(col, path, label string, fresh bool, extra ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var argv []string
	switch col {
	case "python":
		argv = []string{s.durus, "-s", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--file", path, "--logginglevel", "30"}
	default:
		if fresh {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return nil, err
			}
		}
		if s.profile && col == "bdb" {
			argv = []string{s.profserve, "-dir", path, "-backend", col, "-durability", "sync",
				"-port", strconv.Itoa(port), "-cpuprofile", filepath.Join(s.work, "cpu-"+label+".pprof")}
			if fresh {
				argv = append(argv, "-create")
			}
			for _, e := range extra {
				if strings.HasPrefix(e, "--gc-grace=") {
					d, _ := time.ParseDuration(strings.TrimPrefix(e, "--gc-grace="))
					if d == 0 {
						d = -1
					}
					argv = append(argv, "-gc-grace", d.String())
				}
			}
			break
		}
		argv = s.serveArgv(col, path, port, fresh, extra)
	}
	p, err := s.ps.start(col, s.logPath("server-"+label), nil, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitPort(p, addr, 10*time.Minute); err != nil {
		s.ps.stop(p, 12*time.Second)
		return nil, err
	}
	return &server{col: col, p: p, addr: addr}, nil
}

// serveArgv is the `durusbdb serve` command line of backend col on path
// at 127.0.0.1:port, durability sync unless extra holds --durability=X,
// with --create when fresh and the rest of extra appended.
func (s *suite) serveArgv(col, path string, port int, fresh bool, extra []string) []string {
	durability := "sync"
	extra = slices.DeleteFunc(slices.Clone(extra), func(e string) bool {
		v, ok := strings.CutPrefix(e, "--durability=")
		if ok {
			durability = v
		}
		return ok
	})
	argv := []string{s.durusbdb, "serve", "--dir", path, "--backend", col, "--durability", durability,
		"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--logginglevel", "30",
		"--cache-size", strconv.FormatInt(s.cacheSize, 10)}
	if fresh {
		argv = append(argv, "--create")
	}
	return append(argv, extra...)
}

// stopServer ends srv (SIGTERM, clean shutdown) and, when profiling,
// summarises its CPU profile.
func (s *suite) stopServer(srv *server, label string) {
	s.ps.stop(srv.p, 15*time.Second)
	if s.profile && srv.col == "bdb" {
		prof := filepath.Join(s.work, "cpu-"+label+".pprof")
		out, _, err := s.ps.runCmd(2*time.Minute, s.logPath("pprof"), "go", "tool", "pprof", "-top", "-lines", "-nodecount=40", s.profserve, prof)
		if err != nil {
			s.logf("pprof %s: %v", prof, err)
			return
		}
		txt := filepath.Join(s.work, "cpu-"+label+".txt")
		os.WriteFile(txt, []byte(out), 0o644)
		s.logf("CPU profile of %s: %s", label, txt)
	}
}

// fig runs one load-generator figure and logs it.
func (s *suite) fig(spec gen.Spec, what string) (gen.Result, bool) {
	if spec.Warmup == 0 {
		spec.Warmup = s.warm
	}
	if spec.Duration == 0 {
		spec.Duration = s.dur
	}
	r, err := gen.Measure(spec)
	if err != nil {
		s.fail(what, err)
		return r, false
	}
	s.logf("  %-40s %10.0f ops/s  %10.0f units/s  p50 %v p99 %v", what, r.OpsPerSec(), r.UnitsPerSec(), r.P50, r.P99)
	return r, true
}

// ceilings measures the machine: the disk's fdatasync, raw libdb commits,
// and the trivial loopback server. It runs twice, first and last, and each
// ceiling keeps the higher figure: interference from other load can only
// lower a ceiling.
func (s *suite) ceilings() {
	s.logf("ceilings")
	secs := fmt.Sprintf("%.3f", s.dur.Seconds())
	dir := filepath.Join(s.work, "commitc")
	kv, err := s.fsyncLoop(dir)
	if err != nil {
		s.fail("fdatasync loop", err)
	} else {
		s.res.setMax("fsync", "ceiling", kv["ops_per_s"])
		if kv["ops_per_s"] > s.machine.fsyncRate {
			s.machine.fsyncP50us = kv["p50_us"]
			s.machine.fsyncRate = kv["ops_per_s"]
		}
	}
	for _, n := range s.commitConns {
		for _, mode := range []string{"group", "sync"} {
			kv, err := s.commitcRun(dir, mode, strconv.Itoa(n), secs)
			if err != nil {
				s.fail(fmt.Sprintf("commitc %s %d", mode, n), err)
				continue
			}
			if mode == "group" {
				s.res.setMax(fmt.Sprintf("commits%d", n), "ceiling", kv["ops_per_s"])
			} else {
				s.res.setMax(fmt.Sprintf("rawsync%d", n), "ceiling", kv["ops_per_s"])
			}
		}
	}
	for _, size := range []int{100, 10240} {
		objs := s.objs100
		if size > 100 {
			objs = s.objs10k
		}
		p, addr, err := s.startTrivial("trivial", objs, size)
		if err != nil {
			s.fail("trivial server", err)
			continue
		}
		pick := func(rng *rand.Rand) uint64 { return 1 + rng.Uint64N(uint64(objs)) }
		sz := "100"
		if size > 100 {
			sz = "10k"
		}
		for _, conns := range []int{1, 8} {
			spec := gen.Spec{Addr: addr, Mode: "loads", Conns: conns, Pick: pick}
			if r, ok := s.fig(spec, fmt.Sprintf("trivial loads %d conns %s B", conns, sz)); ok {
				s.res.setMax(fmt.Sprintf("loads%d_%s", conns, sz), "ceiling", r.OpsPerSec())
			}
		}
		if size == 100 {
			spec := gen.Spec{Addr: addr, Mode: "bulk", Conns: 8, Bulk: 100, Pick: pick}
			if r, ok := s.fig(spec, "trivial bulk B100 8 conns"); ok {
				s.res.setMax("bulk", "ceiling", r.UnitsPerSec())
			}
			for _, conns := range s.commitConns {
				spec := gen.Spec{Addr: addr, Mode: "commits", Conns: conns, Size: 100}
				if r, ok := s.fig(spec, fmt.Sprintf("trivial commits %d conns", conns)); ok {
					s.res.setMax(fmt.Sprintf("proto%d", conns), "ceiling", r.OpsPerSec())
					s.res.setMax(fmt.Sprintf("nosync_commits%d", conns), "ceiling", r.OpsPerSec())
				}
				spec = gen.Spec{Addr: addr, Mode: "updates", Conns: conns, Size: s.updateSize}
				if r, ok := s.fig(spec, fmt.Sprintf("trivial updates %d conns", conns)); ok {
					s.res.setMax(fmt.Sprintf("updates%d", conns), "ceiling", r.OpsPerSec())
					s.res.setMax(fmt.Sprintf("nosync_updates%d", conns), "ceiling", r.OpsPerSec())
				}
			}
		}
		s.ps.stop(p, 5*time.Second)
	}
	os.RemoveAll(dir)
}

// fsyncLoop runs bench/commitc's raw pwrite + fdatasync loop in a fresh
// directory for the suite's figure duration (ops_per_s, p50_us, …).
func (s *suite) fsyncLoop(dir string) (map[string]float64, error) {
	return s.commitcRun(dir, "fsync", fmt.Sprintf("%.3f", s.dur.Seconds()))
}

// commitcRun runs bench/commitc in a fresh directory and parses its
// key=value line.
func (s *suite) commitcRun(dir string, args ...string) (map[string]float64, error) {
	os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	out, _, err := s.ps.runCmd(30*time.Minute, s.logPath("commitc"), append([]string{s.commitc, dir}, args...)...)
	if err != nil {
		return nil, err
	}
	kv := map[string]float64{}
	for _, f := range strings.Fields(out) {
		if k, v, ok := strings.Cut(f, "="); ok {
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				kv[k] = x
			}
		}
	}
	if _, ok := kv["ops_per_s"]; !ok && kv["mb_per_s"] == 0 {
		return nil, fmt.Errorf("commitc %v: unexpected output %q", args, out)
	}
	s.logf("  commitc %-22s %s", strings.Join(args, " "), strings.TrimSpace(out))
	return kv, nil
}

// serverFigures measures one server on a fresh database: the seed test
// through the Python client, loads, bulk loads, commits, the big commit.
func (s *suite) serverFigures(col string) {
	s.logf("server %s", col)
	path := filepath.Join(s.work, "db-"+col)
	if col == "python" {
		path += ".durus"
	}
	// The collector is kept idle (gc-grace 24h): the commit figures store
	// unreferenced records, which it would otherwise start removing 60 s
	// into the run; its cost is measured on its own by gcFigures.
	var extra []string
	if col != "python" {
		extra = []string{"--gc-grace=24h"}
	}
	srv, err := s.startServer(col, path, "main-"+col, true, extra...)
	if err != nil {
		s.fail("start "+col, err)
		return
	}
	defer func() {
		s.stopServer(srv, "main-"+col)
		os.RemoveAll(path)
	}()

	if secs, err := s.seedTest(srv.addr); err != nil {
		s.fail("seed test on "+col, err)
	} else {
		s.res.set("seed", col, secs)
		s.logf("  %-40s %10.3f s", "seed test (Python client)", secs)
	}

	small, err := gen.Populate(srv.addr, s.objs100, 100, nil)
	if err != nil {
		s.fail("populate "+col, err)
		return
	}
	for _, conns := range []int{1, 8} {
		if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "loads", Conns: conns, Pick: gen.PickFrom(small)},
			fmt.Sprintf("%s loads %d conns 100 B", col, conns)); ok {
			s.res.set(fmt.Sprintf("loads%d_100", conns), col, r.OpsPerSec())
		}
	}
	big, err := gen.Populate(srv.addr, s.objs10k, 10240, small)
	if err != nil {
		s.fail("populate 10 KB "+col, err)
	} else {
		for _, conns := range []int{1, 8} {
			if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "loads", Conns: conns, Pick: gen.PickFrom(big)},
				fmt.Sprintf("%s loads %d conns 10 KB", col, conns)); ok {
				s.res.set(fmt.Sprintf("loads%d_10k", conns), col, r.OpsPerSec())
			}
		}
	}
	if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "bulk", Conns: 8, Bulk: 100, Pick: gen.PickFrom(small)},
		col+" bulk B100 8 conns"); ok {
		s.res.set("bulk", col, r.UnitsPerSec())
	}
	s.commitFigures(srv, "")

	if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "bigcommit", Conns: 1, Records: s.bigRecords, Size: 100, MinOps: 3},
		fmt.Sprintf("%s commit of %d records", col, s.bigRecords)); ok {
		s.res.set("bigcommit", col, r.UnitsPerSec())
	}
	if m, err := memStatus(srv.p.Pid()); err == nil {
		s.logf("  %s RSS %.0f MiB (anon %.0f), peak %.0f MiB", col, float64(m.rss)/(1<<20), float64(m.anon)/(1<<20), float64(m.hwm)/(1<<20))
	}
}

// startTrivial starts the trivial server (bench/trivial) with objs records
// of size bytes and extra flags on a free port and waits until it
// listens; log names its log file.
func (s *suite) startTrivial(log string, objs, size int, extra ...string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"-addr", addr, "-objects", strconv.Itoa(objs), "-size", strconv.Itoa(size)}, extra...)
	p, err := s.ps.start("trivial", s.logPath(log), nil, append([]string{s.trivial}, args...)...)
	if err == nil {
		err = waitPort(p, addr, time.Minute)
	}
	if err != nil {
		if p != nil {
			s.ps.stop(p, 5*time.Second)
		}
		return nil, "", err
	}
	return p, addr, nil
}

// gcFigures measures durable commits at 8 connections with the
// reference-count collector removing the committed (unreferenced) records
// as they come (no grace period) and with the collector idle (grace 24 h).
func (s *suite) gcFigures(col string) {
	s.logf("GC cost %s", col)
	for _, c := range []struct{ key, grace string }{{"gc_off", "24h"}, {"gc_on", "0s"}} {
		path := filepath.Join(s.work, "db-gc-"+col)
		label := c.key + "-" + col
		srv, err := s.startServer(col, path, label, true, "--gc-grace="+c.grace)
		if err != nil {
			s.fail("start "+label, err)
			continue
		}
		if r, ok := s.fig(gen.Spec{Addr: srv.addr, Mode: "commits", Conns: 8, Size: 100},
			fmt.Sprintf("%s commits 8 conns, gc-grace %s", col, c.grace)); ok {
			s.res.set(c.key, col, r.OpsPerSec())
		}
		s.stopServer(srv, label)
		if c.key == "gc_on" {
			// Prove that the stream was collected: the collector's count.
			out, _, err := s.ps.runCmd(2*time.Minute, s.logPath("stats"), s.durusbdb, "stats", "--dir", path, "--json")
			var st struct {
				GCFreed uint64 `json:"gc_freed"`
				GCQueue uint64 `json:"gc_queue"`
			}
			if err == nil {
				err = json.Unmarshal([]byte(out), &st)
			}
			if err != nil {
				s.fail("stats after "+label, err)
			} else {
				s.res.set("gc_freed", col, float64(st.GCFreed))
				s.logf("  %s collector removed %d records, %d still queued", col, st.GCFreed, st.GCQueue)
			}
		}
		os.RemoveAll(path)
	}
}

// openFigures starts a server on a cached data set and measures the time
// from start to the first served load, then loads random objects for the
// figure's duration and reads the server's RSS.
func (s *suite) openFigures(col string, ds *dataset) {
	path := ds.shelf
	if col != "python" {
		path = ds.dirs[col]
	}
	label := fmt.Sprintf("open-%s-%d", col, ds.count)
	port, err := freePort()
	if err != nil {
		s.fail(label, err)
		return
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// startServer waits for the port; open-to-first-load must be timed
	// from the exec, so this path starts the process itself.
	var argv []string
	if col == "python" {
		argv = []string{s.durus, "-s", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--file", path, "--logginglevel", "30"}
	} else {
		argv = []string{s.durusbdb, "serve", "--dir", path, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
			"--logginglevel", "30", "--cache-size", strconv.FormatInt(s.cacheSize, 10), "--gc-grace", "24h"}
	}
	// The open is timed reps times (median), the last server stays up for
	// the RSS figure.
	reps := 3
	if s.scale == "smoke" {
		reps = 1
	}
	var times []time.Duration
	var p *proc
	for i := range reps {
		p, err = s.ps.start(col, s.logPath("server-"+label), nil, argv...)
		if err != nil {
			s.fail(label, err)
			return
		}
		d, err := firstLoad(p, addr, ds.count-1, 10*time.Minute)
		if err != nil {
			s.ps.stop(p, 30*time.Second)
			s.fail(label, err)
			return
		}
		times = append(times, d)
		if i < reps-1 {
			s.ps.stop(p, 30*time.Second)
		}
	}
	defer s.ps.stop(p, 30*time.Second)
	slices.Sort(times)
	d := times[len(times)/2]
	key := fmt.Sprintf("open_%d", ds.count)
	s.res.set(key, col, d.Seconds())
	s.logf("  %-40s %10.3f s (of %v)", fmt.Sprintf("%s open→first load, %s objects", col, count(ds.count)), d.Seconds(), times)
	if _, ok := s.fig(gen.Spec{Addr: addr, Mode: "loads", Conns: 8, Pick: gen.PickBelow(ds.count)},
		fmt.Sprintf("%s random loads over %s objects", col, count(ds.count))); !ok {
		return
	}
	m, err := memStatus(p.Pid())
	if err != nil {
		s.fail(label+" RSS", err)
		return
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	s.res.set(fmt.Sprintf("rss_%d", ds.count), col, mib(m.rss))
	s.res.set(fmt.Sprintf("hwm_%d", ds.count), col, mib(m.hwm))
	s.res.set(fmt.Sprintf("anon_%d", ds.count), col, mib(m.anon))
	s.logf("  %s RSS %.0f MiB (anon %.0f, file/shmem %.0f), peak %.0f MiB", col, mib(m.rss), mib(m.anon), mib(m.file), mib(m.hwm))
}

// migrateFigures times `durusbdb migrate` of the generated Shelf file into
// a fresh database of each backend, and the raw libdb bulk load of the same
// records.
func (s *suite) migrateFigures(src string) {
	fi, err := os.Stat(src)
	if err != nil {
		s.fail("migrate source", err)
		return
	}
	mb := float64(fi.Size()) / 1e6
	s.machine.migrateMB = mb
	s.logf("migrate of %.0f MB", mb)
	if kv, err := s.commitcRun(filepath.Join(s.work, "bulk"), "bulk", strconv.FormatUint(s.migrateCount, 10)); err != nil {
		s.fail("raw libdb bulk load", err)
	} else {
		// The ceiling loads the records, not the file: express it per file
		// MB as the migrate figure is (file size / time).
		s.res.set("migrate", "ceiling", mb/kv["secs"])
	}
	for _, b := range s.backends {
		dir := filepath.Join(s.work, "mig-"+b)
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			s.fail("migrate", err)
			continue
		}
		_, el, err := s.ps.runCmd(2*time.Hour, s.logPath("migrate"), s.durusbdb, "migrate", "--dir", dir, "--create", "--backend", b, src)
		os.RemoveAll(dir)
		if err != nil {
			s.fail("migrate "+b, err)
			continue
		}
		s.res.set("migrate", b, mb/el.Seconds())
		s.logf("  %-40s %10.1f MB/s (%.1f s)", "migrate "+b, mb/el.Seconds(), el.Seconds())
	}
}

// seedScript is the seed's test, run by the stock Python client.
const seedScript = `import sys, time
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.btree import BTree
port = int(sys.argv[1])
t0 = time.perf_counter()
conn = Connection(ClientStorage(host="127.0.0.1", port=port))
root = conn.get_root()
root[0] = BTree()
conn.commit()
tree = root[0]
for i in range(65536):
    tree[i] = i
conn.commit()
for i in range(0, 65536, 2):
    del tree[i]
conn.commit()
n = len(tree)
el = time.perf_counter() - t0
if n != 32768:
    sys.exit("len(tree) = %d, want 32768" % n)
print("%.6f" % el)
`

// seedTest runs seedScript against addr and returns its seconds.
func (s *suite) seedTest(addr string) (float64, error) {
	script := filepath.Join(s.work, "seed_test.py")
	if err := os.WriteFile(script, []byte(seedScript), 0o644); err != nil {
		return 0, err
	}
	_, port, _ := strings.Cut(addr, ":")
	out, _, err := s.ps.runCmd(10*time.Minute, s.logPath("seed"), s.python, script, port)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(out), 64)
}
