package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/sysmon"
)

// TestServeKeepsSysmonAwake: a real `durusbdb serve` re-executes itself in
// place (same pid, still serving) with sysmon.Setting in its GODEBUG; not
// with --keep-sysmon-awake=false, and an operator's own schedtrace stands;
// its start-up line says whether sysmon is kept awake.
func TestServeKeepsSysmonAwake(t *testing.T) {
	bin := cliBinary(t)
	for _, tc := range []struct {
		name  string
		env   []string
		flags []string
		want  string // GODEBUG of the serving process ("" for none)
		awake bool   // what its start-up line says
	}{
		{"default", nil, nil, sysmon.Setting, true},
		{"other GODEBUG kept", []string{"GODEBUG=madvdontneed=1"}, nil, "madvdontneed=1," + sysmon.Setting, true},
		{"flag off", nil, []string{"--keep-sysmon-awake=false"}, "", false},
		{"operator's schedtrace", []string{"GODEBUG=schedtrace=0"}, nil, "schedtrace=0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := filepath.Join(dir, "durus.sock")
			env := append([]string{"GODEBUG="}, tc.env...) // none inherited from the test run
			argv := append([]string{bin, "serve", "--dir", filepath.Join(dir, "db"), "--create", "--address", addr}, tc.flags...)
			p := proc.StartT(t, proc.Options{Env: env}, argv...)
			want := "sysmon_awake=" + strconv.FormatBool(tc.awake)
			if err := p.WaitReady(addr, 60*time.Second); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/environ")
			if err != nil {
				t.Fatalf("environment of the server: %v", err)
			}
			got := ""
			for _, kv := range strings.Split(string(raw), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					got = v // the last one: what the child was given
				}
			}
			if got != tc.want {
				t.Fatalf("server pid %d runs with GODEBUG=%q, want %q", p.Pid(), got, tc.want)
			}
			if err := p.WaitUntil(30*time.Second, "log line with "+want, func() bool { return strings.Contains(p.Log(), want) }); err != nil {
				t.Fatal(err)
			}
			if err := p.Quit(addr, 30*time.Second); err != nil {
				t.Fatal(err)
			}
		})
	}
}
