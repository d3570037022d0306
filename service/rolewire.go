package service

import (
	"context"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// roleTracker is what *engine.DB offers to follow its role: /role, the
// role metrics and --on-role-change use it (tests give a fake).
type roleTracker interface {
	Role() kv.RoleInfo
	OnRoleChange(fn func(kv.RoleInfo))
}

// watchRole connects a replicated database's role to the metrics (/role,
// /readyz, durusbdb_repl_*) and starts the --on-role-change hook. A
// standalone database (no Config.Replication) has neither.
func (in *instance) watchRole(rt roleTracker) error {
	if in.cfg.Replication == nil {
		return nil
	}
	if in.observer != nil {
		if err := in.observer.SetRole(rt); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if in.cfg.RoleHook.Command == "" {
		return nil
	}
	h := startRoleHook(in.cfg.RoleHook, in.log)
	in.onReturn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Close(ctx)
	})
	rt.OnRoleChange(h.Notify)
	h.NotifyInitial(rt.Role())
	return nil
}
