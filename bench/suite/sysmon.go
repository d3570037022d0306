package main

import (
	"os"
	"slices"
	"strings"

	"github.com/durusbdb/durusbdb/internal/sysmon"
)

// The load generator runs inside the suite's own process, so the suite
// keeps its Go runtime's sysmon awake as `durusbdb serve` keeps its own
// (internal/sysmon): a client that goes idle between replies otherwise
// parks sysmon and wakes it again at its next system call, many thousand
// times a second, and measures that latency of its own scheduler along with
// the server's (docs/PERFORMANCE.md, eleventh session). The servers and
// ceilings it starts run with the GODEBUG the suite was started with.

// origGODEBUGEnv carries the suite's original GODEBUG across its
// re-execution, for its children.
const origGODEBUGEnv = "DURUSBDB_BENCH_GODEBUG"

// clientSysmonEnv, set to "park", leaves the suite's runtime as it is (for
// A/B runs).
const clientSysmonEnv = "BENCH_CLIENT_SYSMON"

// keepSysmonAwake re-executes the suite with sysmon kept awake unless
// sysmonPlan says otherwise. It returns the environment entries every
// child process gets; an error only when the re-execution failed (the
// suite then goes on as it is). sysmon.Active tells afterwards whether
// the client's sysmon is kept awake.
func keepSysmonAwake() (childEnv []string, err error) {
	execEnv, childEnv := sysmonPlan(os.Environ())
	if execEnv == nil {
		return childEnv, nil
	}
	return nil, sysmon.Exec(execEnv)
}

// sysmonPlan decides from the suite's environment env: a non-nil execEnv
// is the environment to re-execute with (sysmon kept awake, the original
// GODEBUG saved in origGODEBUGEnv); childEnv is added to every child's
// environment (the original GODEBUG, once re-executed). Neither when
// BENCH_CLIENT_SYSMON=park or when GODEBUG already names schedtrace (the
// caller's choice stands, for the children too).
func sysmonPlan(env []string) (execEnv, childEnv []string) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, origGODEBUGEnv+"="); ok {
			return nil, []string{"GODEBUG=" + v}
		}
	}
	if slices.Contains(env, clientSysmonEnv+"=park") {
		return nil, nil
	}
	awake, changed := sysmon.Environ(env)
	if !changed {
		return nil, nil
	}
	return append(awake, origGODEBUGEnv+"="+sysmon.GODEBUG(env)), nil
}

// clientSysmonNote is the machine description's words on the load
// generator's runtime (this process's).
func clientSysmonNote() string {
	if sysmon.Active() {
		return ", its Go runtime's sysmon kept awake as serve's is"
	}
	return ", its Go runtime's sysmon free to park (BENCH_CLIENT_SYSMON=park or the re-execution failed)"
}
