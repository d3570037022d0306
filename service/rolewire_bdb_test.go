//go:build bdb

package service

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/freeport"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// TestServeRoleWiring runs Serve as the first site of a replication
// group (the other two never start) with --metrics and --on-role-change:
// /role answers the engine's role with the status that goes with it, and
// the hook has run for that same role.
func TestServeRoleWiring(t *testing.T) {
	dir := t.TempDir()
	hookOut := filepath.Join(dir, "hook")
	t.Setenv("HOOK_OUT", hookOut)
	addrs := freeport.T(t, 4)
	maddr := addrs[0]
	repl := &kv.Replication{Listen: addrs[1], Peers: addrs[2:], Init: true}
	_, stop, done := startServe(t, Config{Dir: filepath.Join(dir, "db"), Engine: engine.Options{Create: true}, Version: "test",
		Log: LogConfig{Stderr: &testlog.Buffer{}}, MetricsAddr: maddr, Replication: repl,
		RoleHook: RoleHookConfig{Command: `echo "$DURUSBDB_ROLE" >> "$HOOK_OUT"`, Timeout: 10 * time.Second}})
	defer func() { stop(); <-done }()

	var role struct {
		Role string `json:"role"`
	}
	var code int
	getRole := func() {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://%s/role", maddr))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		if err := json.NewDecoder(resp.Body).Decode(&role); err != nil {
			t.Fatal(err)
		}
	}
	// The hook's newest run names the role /role reports.
	testwait.For(t, "the hook run for the current role", func() bool {
		getRole()
		lines := readLines(hookOut)
		return len(lines) > 0 && lines[len(lines)-1] == role.Role
	})
	wantOK := role.Role == kv.RoleMaster || role.Role == kv.RoleStandalone
	if (code == http.StatusOK) != wantOK {
		t.Errorf("/role as %q: HTTP %d", role.Role, code)
	}
}
