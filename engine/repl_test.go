package engine

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestRoleNotifyDrainsOnClose: a role change queued just before the DB
// closes (a demoted master reports "replica", then fails and closes) still
// reaches the OnRoleChange callbacks, so that no watcher keeps taking the
// site for a master.
func TestRoleNotifyDrainsOnClose(t *testing.T) {
	db := &DB{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	db.opts.Replication = &kv.Replication{}
	db.ctx, db.cancel = context.WithCancel(context.Background())
	var got []string
	db.OnRoleChange(func(ri kv.RoleInfo) { got = append(got, ri.Role) })
	db.role.ch = make(chan kv.RoleInfo, 64)
	db.setRole(kv.RoleInfo{Role: kv.RoleMaster})
	db.setRole(kv.RoleInfo{Role: kv.RoleReplica})
	db.cancel() // closed before the notifier ran
	db.wg.Add(1)
	db.notifyLoop(db.role.ch)
	if len(got) != 2 || got[1] != kv.RoleReplica {
		t.Fatalf("callbacks saw %v, want [master replica]", got)
	}
}
