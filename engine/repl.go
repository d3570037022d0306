package engine

import (
	"sync"

	"github.com/durusbdb/durusbdb/kv"
)

// roleState tracks the site's replication role for Role and OnRoleChange.
// A DB opened without Options.Replication is "standalone" for ever.
type roleState struct {
	mu   sync.Mutex
	info kv.RoleInfo
	subs []func(kv.RoleInfo) // OnRoleChange callbacks; owned by mu
	ch   chan kv.RoleInfo    // changes for the notifying goroutine
}

// Role returns the site's current role. A DB opened without replication
// reports kv.RoleStandalone (it is its own master; MasterDurusAddr is its
// own published address when Options.Replication is nil: "").
func (db *DB) Role() kv.RoleInfo {
	db.role.mu.Lock()
	defer db.role.mu.Unlock()
	if db.role.info.Role == "" {
		return kv.RoleInfo{Role: kv.RoleStandalone}
	}
	return db.role.info
}

// OnRoleChange registers fn, called on every change of Role, in order,
// from one goroutine of the DB (fn must not block for long). A standalone
// DB never calls it.
func (db *DB) OnRoleChange(fn func(kv.RoleInfo)) {
	db.role.mu.Lock()
	defer db.role.mu.Unlock()
	db.role.subs = append(db.role.subs, fn)
}

// IsReplica says whether the DB is a site of a replication group that is
// not the master now (writes are refused with ErrNotMaster).
func (db *DB) IsReplica() bool {
	r := db.Role().Role
	return r != kv.RoleStandalone && r != kv.RoleMaster
}
