//go:build bdb

package bdb_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
)

// TestReplGroupSingleSite: the group of a one-site group is that site,
// local, master and counted once (repmgr_site_list, rep_get_nsites);
// RemoveDeadSite refuses its own address and a non-member (listing the
// members); a standalone environment has no group.
func TestReplGroupSingleSite(t *testing.T) {
	e, addr, _ := openSingleMaster(t)
	g, err := e.Group()
	if err != nil {
		t.Fatal(err)
	}
	if g.NSites != 1 || g.Master != addr || len(g.Sites) != 1 || !g.Sites[0].Local || !g.Sites[0].Master || g.Sites[0].Addr != addr {
		t.Fatalf("group %+v, want this site alone, master", g)
	}
	if err := e.RemoveDeadSite(addr, true); !errors.Is(err, bdb.ErrLocalSite) {
		t.Fatalf("removing this site: %v, want ErrLocalSite", err)
	}
	if err := e.RemoveDeadSite("127.0.0.1:1", false); !errors.Is(err, bdb.ErrNotInGroup) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("removing a non-member: %v, want ErrNotInGroup listing %s", err, addr)
	}
	if err := e.RemoveDeadSite("nohostport", false); err == nil || !strings.Contains(err.Error(), "nohostport") {
		t.Fatalf("removing a bad address: %v", err)
	}

	se, err := bdb.OpenEnv(t.TempDir(), bdb.EnvOptions{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer se.Close()
	if _, err := se.Group(); !errors.Is(err, bdb.ErrNotReplicated) {
		t.Fatalf("group of a standalone environment: %v, want ErrNotReplicated", err)
	}
}
