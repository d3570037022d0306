package main

import (
	"slices"
	"testing"

	"github.com/durusbdb/durusbdb/internal/sysmon"
)

// TestSysmonPlan: the suite re-executes once with sysmon kept awake and
// its original GODEBUG saved, the re-executed suite hands that GODEBUG
// back to its children, and BENCH_CLIENT_SYSMON=park or a GODEBUG that
// names schedtrace leave everything as it is.
func TestSysmonPlan(t *testing.T) {
	for _, c := range []struct {
		name            string
		env             []string
		execEnv, childs []string
	}{
		{"no GODEBUG", []string{"PATH=/bin"},
			[]string{"PATH=/bin", "GODEBUG=" + sysmon.Setting, origGODEBUGEnv + "="}, nil},
		{"other GODEBUG settings", []string{"GODEBUG=madvdontneed=1", "HOME=/root"},
			[]string{"GODEBUG=madvdontneed=1," + sysmon.Setting, "HOME=/root", origGODEBUGEnv + "=madvdontneed=1"}, nil},
		{"re-executed", []string{"GODEBUG=madvdontneed=1," + sysmon.Setting, origGODEBUGEnv + "=madvdontneed=1"},
			nil, []string{"GODEBUG=madvdontneed=1"}},
		{"re-executed, no GODEBUG before", []string{"GODEBUG=" + sysmon.Setting, origGODEBUGEnv + "="},
			nil, []string{"GODEBUG="}},
		{"parked on purpose", []string{clientSysmonEnv + "=park"}, nil, nil},
		{"schedtrace named", []string{"GODEBUG=schedtrace=0"}, nil, nil},
	} {
		execEnv, childs := sysmonPlan(c.env)
		if !slices.Equal(execEnv, c.execEnv) || !slices.Equal(childs, c.childs) {
			t.Errorf("%s: sysmonPlan(%q) = %q, %q; want %q, %q", c.name, c.env, execEnv, childs, c.execEnv, c.childs)
		}
	}
}
