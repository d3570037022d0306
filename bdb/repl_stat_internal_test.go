//go:build bdb

package bdb

import (
	"testing"

	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// A demoted master still reports libdb's start-up flag from before its
// demotion, with no master known: the poll must not count it synced (its
// reset would reopen handles the coming rollback kills). Once it knows
// its master the flag is current.
func TestMergeStatStaleStartupFlag(t *testing.T) {
	demoted := ReplStatus{Role: RoleReplica, Synced: false, MasterEID: libdb.EIDInvalid, Changes: 7}
	stale := libdb.RepStat{Status: libdb.RepClientStatus, Master: libdb.EIDInvalid, StartupComplete: true}
	if st := mergeStat(demoted, stale, true, false); st.Synced {
		t.Fatalf("synced from a start-up flag with no master known: %+v", st)
	}
	fresh := stale
	fresh.Master = 2
	if st := mergeStat(demoted, fresh, true, false); !st.Synced || st.MasterEID != 2 || st.Role != RoleReplica {
		t.Fatalf("not synced from a current start-up flag: %+v", st)
	}
	if st := mergeStat(demoted, fresh, false, false); st.Synced || st.MasterEID != libdb.EIDInvalid {
		t.Fatalf("role taken from a snapshot an event overtook: %+v", st)
	}
	master := libdb.RepStat{Status: libdb.RepMaster, Master: 1, Elections: 3, MasterChanges: 4}
	st := mergeStat(demoted, master, true, false)
	if st.Role != RoleMaster || !st.Synced || st.Elections != 3 || st.MasterChanges != 4 {
		t.Fatalf("master snapshot: %+v", st)
	}
}

// A replica whose connection to its master is lost (the master failed;
// libdb's rep_stat keeps naming it while elections fail) knows no master
// until the connection is back or another site is elected: a lone
// replica named its dead master, and /readyz said ready.
func TestMergeStatMasterLost(t *testing.T) {
	replica := ReplStatus{Role: RoleReplica, Synced: true, MasterEID: libdb.EIDInvalid, Changes: 9}
	stale := libdb.RepStat{Status: libdb.RepClientStatus, Master: 2, StartupComplete: true}
	if st := mergeStat(replica, stale, true, true); st.MasterEID != libdb.EIDInvalid {
		t.Fatalf("master taken from rep_stat while its connection is lost: %+v", st)
	}
	if st := mergeStat(replica, stale, true, false); st.MasterEID != 2 {
		t.Fatalf("master not taken from rep_stat once connected: %+v", st)
	}
}
