package engine

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testwait"
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

// scriptedRoles is a kv.ReplicatedStore whose role follows a script, one
// step per ReplRole call, then stays at the last step.
type scriptedRoles struct {
	kv.Store
	mu    sync.Mutex
	roles []kv.RoleInfo
	calls int
}

func (s *scriptedRoles) ReplRole() kv.RoleInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	ri := s.roles[min(s.calls, len(s.roles)-1)]
	s.calls++
	return ri
}

func (s *scriptedRoles) ReplChanged() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

// TestDemotedMasterWaitsForAnotherMaster: after DUPMASTER a master is a
// replica without a master while the group elects; it may win (it then
// reports master a lockout later), so it must not fail before it follows
// another master.
func TestDemotedMasterWaitsForAnotherMaster(t *testing.T) {
	db := &DB{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	db.opts.Replication = &kv.Replication{Listen: "127.0.0.1:1"}
	db.ctx, db.cancel = context.WithCancel(context.Background())
	db.fatal.ch = make(chan struct{})
	rs := &scriptedRoles{roles: []kv.RoleInfo{
		{Role: kv.RoleStarting},
		{Role: kv.RoleSyncing},
		{Role: kv.RoleReplica}, // elected, not master yet: no master known
	}}
	db.wg.Add(1)
	go db.roleLoop(rs)
	testwait.Within(t, 10*time.Second, "the role loop past the script (or failed)", func() bool {
		select {
		case <-db.fatal.ch:
			return true
		default:
		}
		rs.mu.Lock()
		defer rs.mu.Unlock()
		return rs.calls > 5
	})
	db.cancel()
	db.wg.Wait()
	select {
	case <-db.fatal.ch:
		t.Fatalf("a demoted master with no other master failed: %v", db.fatal.err)
	default:
	}
	if !db.replica.Load() {
		t.Fatal("a demoted master still takes writes")
	}
}
