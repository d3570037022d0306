package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
)

// fakeRole is a RoleSource whose answer the test sets.
type fakeRole struct {
	mu sync.Mutex
	ri kv.RoleInfo
}

func (f *fakeRole) Role() kv.RoleInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ri
}

func (f *fakeRole) set(ri kv.RoleInfo) {
	f.mu.Lock()
	f.ri = ri
	f.mu.Unlock()
}

// TestRoleEndpoint serves /role and /readyz over HTTP with a fake role
// source through every role: the JSON fields, 200 only where commits are
// taken, and /readyz ready on a master and an in-sync replica only.
func TestRoleEndpoint(t *testing.T) {
	m := New(Options{NoRuntime: true})
	ep, err := m.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close(context.Background())
	addr := ep.Addr().String()

	checkRole := func(wantCode int, want roleReply) {
		t.Helper()
		code, body := probe(t, addr, "/role")
		var got roleReply
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("/role body %q: %v", body, err)
		}
		if code != wantCode || got != want {
			t.Errorf("/role: %d %+v, want %d %+v", code, got, wantCode, want)
		}
		for _, field := range []string{`"role"`, `"master"`, `"master_repl"`, `"lag_seconds"`} {
			if !strings.Contains(body, field) {
				t.Errorf("/role body %q lacks %s", body, field)
			}
		}
	}
	checkRole(http.StatusServiceUnavailable, roleReply{Role: kv.RoleStarting})
	m.SetProbes(Probes{Store: &fakeStore{dir: t.TempDir(), err: engine.ErrNotFound}})
	checkRole(http.StatusOK, roleReply{Role: kv.RoleStandalone})

	src := &fakeRole{ri: kv.RoleInfo{Role: kv.RoleSyncing}}
	if err := m.SetRole(src); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ri        kv.RoleInfo
		code      int
		wantReady bool
	}{
		{kv.RoleInfo{Role: kv.RoleStarting}, http.StatusServiceUnavailable, false},
		{kv.RoleInfo{Role: kv.RoleSyncing, MasterDurusAddr: "10.0.0.1:2972", MasterReplAddr: "10.0.0.1:2973"}, http.StatusServiceUnavailable, false},
		{kv.RoleInfo{Role: kv.RoleReplica, MasterDurusAddr: "10.0.0.1:2972", MasterReplAddr: "10.0.0.1:2973", Lag: 1500 * time.Millisecond}, http.StatusServiceUnavailable, true},
		// A replica that knows no master (its master failed, no election
		// won yet) forwards no commit: not ready.
		{kv.RoleInfo{Role: kv.RoleReplica}, http.StatusServiceUnavailable, false},
		{kv.RoleInfo{Role: kv.RoleMaster, MasterDurusAddr: "10.0.0.2:2972", MasterReplAddr: "10.0.0.2:2973"}, http.StatusOK, true},
		// A master alone in a group configured for more: /role names it,
		// /readyz says commits are refused.
		{kv.RoleInfo{Role: kv.RoleMaster, MasterDurusAddr: "10.0.0.2:2972", MasterReplAddr: "10.0.0.2:2973",
			NoQuorum: "1 of the replication group's 3 sites have joined"}, http.StatusOK, false},
	}
	for _, c := range cases {
		src.set(c.ri)
		checkRole(c.code, roleReply{Role: c.ri.Role, Master: c.ri.MasterDurusAddr, MasterRepl: c.ri.MasterReplAddr, LagSeconds: c.ri.Lag.Seconds()})
		code, body := probe(t, addr, "/readyz")
		if (code == http.StatusOK) != c.wantReady {
			t.Errorf("/readyz as %s: %d %q", c.ri.Role, code, body)
		}
		if !c.wantReady && (!strings.Contains(body, c.ri.Role) || !strings.Contains(body, c.ri.NoQuorum)) {
			t.Errorf("/readyz as %s does not name the role and the reason: %q", c.ri.Role, body)
		}
	}
}

// TestRoleMetrics checks the names, types and values of the replication
// metrics as scraped.
func TestRoleMetrics(t *testing.T) {
	m := New(Options{NoRuntime: true})
	src := &fakeRole{ri: kv.RoleInfo{Role: kv.RoleReplica, Lag: 250 * time.Millisecond, Elections: 3, PermFailed: 7, Resets: 2}}
	if err := m.SetRole(src); err != nil {
		t.Fatal(err)
	}
	v := gatherValues(t, m)
	want := map[string]float64{
		`durusbdb_repl_role{role="master"}`:     0,
		`durusbdb_repl_role{role="replica"}`:    1,
		`durusbdb_repl_role{role="starting"}`:   0,
		`durusbdb_repl_role{role="syncing"}`:    0,
		`durusbdb_repl_role{role="standalone"}`: 0,
		`durusbdb_repl_lag_seconds`:             0.25,
		`durusbdb_repl_perm_failed_total`:       7,
		`durusbdb_repl_elections_total`:         3,
		`durusbdb_repl_resets_total`:            2,
	}
	for name, w := range want {
		if got, ok := v[name]; !ok || got != w {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, w)
		}
	}
	src.set(kv.RoleInfo{Role: kv.RoleMaster, Elections: 4})
	v = gatherValues(t, m)
	if v[`durusbdb_repl_role{role="master"}`] != 1 || v[`durusbdb_repl_role{role="replica"}`] != 0 || v[`durusbdb_repl_elections_total`] != 4 {
		t.Errorf("after the election: %v", v)
	}
	// The types, as Prometheus reads them.
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, mf := range mfs {
		types[mf.GetName()] = mf.GetType().String()
	}
	for name, typ := range map[string]string{"durusbdb_repl_role": "GAUGE", "durusbdb_repl_lag_seconds": "GAUGE",
		"durusbdb_repl_perm_failed_total": "COUNTER", "durusbdb_repl_elections_total": "COUNTER",
		"durusbdb_repl_resets_total": "COUNTER"} {
		if types[name] != typ {
			t.Errorf("%s is %q, want %s", name, types[name], typ)
		}
	}
	if err := m.SetRole(src); err == nil {
		t.Error("a second SetRole registered a second collector")
	}
}
