// Command loadgen is a load generator for Durus storage servers: a command
// line over bench/gen, which speaks the raw Durus protocol (PROTOCOL.md §4)
// over N connections, so it measures the server rather than a client
// library, and works against any server (durusbdb serve, or Durus's own
// `durus -s`).
//
// Modes:
//
//	loads      one L per request, random oids from a populated set
//	bulk       one B of -bulk oids per request
//	commits    one small record per commit; each connection allocates its
//	           oids with M (never oid 0, the root)
//	updates    one update (-size bytes) per commit of one of 16 records each
//	           connection stored once (no conflicts)
//	bigcommit  -records records in one commit
//
// A loads or bulk run populates -objects records first (reachable from the
// root, which it overwrites, so no collector removes them); with
// -populate=false it picks oids below -objects instead, which must all
// exist. Each run warms up for -warmup, then measures for -duration and
// prints one line of operations per second and latency percentiles:
//
//	mode=commits conns=8 ops=15727 elapsed=5.00s ops/s=3145 p50=2.41ms p99=6.01ms max=15.45ms
//
// Example:
//
//	loadgen -addr 127.0.0.1:2972 -mode loads -conns 8 -duration 10s
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/bench/gen"
)

func main() {
	var (
		spec     gen.Spec
		objects  int
		populate bool
	)
	flag.StringVar(&spec.Addr, "addr", "127.0.0.1:2972", "server address: host:port, a unix socket path, or @name")
	flag.StringVar(&spec.Mode, "mode", "loads", "loads, bulk, commits, updates or bigcommit")
	flag.IntVar(&spec.Conns, "conns", 8, "connections (one goroutine each)")
	flag.DurationVar(&spec.Duration, "duration", 10*time.Second, "measured time")
	flag.DurationVar(&spec.Warmup, "warmup", 2*time.Second, "warm-up time before measuring")
	flag.IntVar(&objects, "objects", 10000, "records populated before the run (loads, bulk)")
	flag.IntVar(&spec.Size, "size", 100, "data bytes per record")
	flag.IntVar(&spec.Bulk, "bulk", 100, "oids per B request (bulk)")
	flag.IntVar(&spec.Records, "records", 10000, "records per commit (bigcommit)")
	flag.DurationVar(&spec.Slow, "slow", 0, "if above zero, print to stderr the start time (UTC) and duration of every measured request slower than this")
	flag.BoolVar(&populate, "populate", true, "populate -objects records before a loads or bulk run; if false, pick oids 0 to -objects-1, which must exist")
	flag.Parse()
	line, err := run(spec, objects, populate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	fmt.Println(line)
}

// run populates if the mode loads records, measures, and formats the
// result line.
func run(spec gen.Spec, objects int, populate bool) (string, error) {
	unit := ""
	switch spec.Mode {
	case "loads", "bulk":
		if objects < 1 {
			return "", errors.New("-objects must be at least 1 for loads and bulk")
		}
		if populate {
			oids, err := gen.Populate(spec.Addr, objects, spec.Size, nil)
			if err != nil {
				return "", err
			}
			spec.Pick = gen.PickFrom(oids)
		} else {
			spec.Pick = gen.PickBelow(uint64(objects))
		}
		if spec.Mode == "bulk" {
			unit = "records"
		}
	case "bigcommit":
		unit = "records"
	}
	// A run longer than one request per -duration (a big commit) still
	// reports one.
	spec.MinOps = 1
	r, err := gen.Measure(spec)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mode=%s conns=%d ops=%d elapsed=%.2fs ops/s=%.0f", spec.Mode, spec.Conns, r.Ops, r.Elapsed.Seconds(), r.OpsPerSec())
	if unit != "" {
		fmt.Fprintf(&b, " %s/s=%.0f", unit, r.UnitsPerSec())
	}
	fmt.Fprintf(&b, " p50=%v p99=%v max=%v", r.P50, r.P99, r.Max)
	for _, op := range r.Slow {
		fmt.Fprintf(os.Stderr, "slow: %s took %v\n", op.Start.UTC().Format("15:04:05.000000"), op.Took)
	}
	return b.String(), nil
}
