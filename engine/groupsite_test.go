package engine

import (
	"testing"
)

// A replication site's directory opened on its own (a tool, offline) is
// not reported as closed uncleanly: its in_use is the group master's,
// replicated, set while the group had a running master. A directory of no
// group with in_use set still is.
func TestGroupSiteInUseIsNotUnclean(t *testing.T) {
	forEachBackend(t, func(t *testing.T, kind string) {
		for _, site := range []bool{false, true} {
			meta := map[string][]byte{"layout": []byte("durusbdb/1"), "access": []byte("btree"), MetaInUse: []byte("1")}
			if site {
				meta[MetaSiteAddrPrefix+"127.0.0.1:3650"] = []byte("127.0.0.1:2972")
			}
			dir := buildByHand(t, kind, meta, [][]byte{rec(0)}, nil, nil)
			db := openTest(t, dir, Options{ReadOnly: true})
			st, err := db.Stats()
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			if st.UncleanShutdown == site || st.ReplicationSite != site {
				t.Errorf("site %v: UncleanShutdown %v, ReplicationSite %v", site, st.UncleanShutdown, st.ReplicationSite)
			}
		}
	})
}
