package service

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestReplicationRefusals: a LevelDB directory with Replication is refused
// with an error naming `durusbdb copy`; a group of two sites is refused
// unless AllowTwoSites; a site without a replication address is refused.
func TestReplicationRefusals(t *testing.T) {
	ldb := t.TempDir()
	if err := os.WriteFile(filepath.Join(ldb, "CURRENT"), []byte("MANIFEST-000001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	three := &kv.Replication{Listen: "127.0.0.1:1", Peers: []string{"127.0.0.1:2", "127.0.0.1:3"}}
	two := &kv.Replication{Listen: "127.0.0.1:1", Peers: []string{"127.0.0.1:2"}}
	cases := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means accepted
	}{
		{"leveldb dir", Config{Dir: ldb, Replication: three}, "durusbdb copy"},
		{"leveldb backend", Config{Dir: t.TempDir(), Replication: three}, ""},
		{"two sites", Config{Dir: t.TempDir(), Replication: two}, "three sites"},
		{"two sites allowed", Config{Dir: t.TempDir(), Replication: &kv.Replication{Listen: "127.0.0.1:1", Peers: []string{"x:1"}, AllowTwoSites: true}}, ""},
		{"no listen", Config{Dir: t.TempDir(), Replication: &kv.Replication{Peers: []string{"a:1", "b:1"}}}, "--repl-listen"},
		{"three sites", Config{Dir: t.TempDir(), Replication: three}, ""},
	}
	cases[1].cfg.Engine.Backend = "leveldb"
	cases[1].want = "durusbdb copy"
	for _, c := range cases {
		err := c.cfg.validate()
		var ce *ConfigError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && (err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want a ConfigError containing %q", c.name, err, c.want)
		}
	}
}
