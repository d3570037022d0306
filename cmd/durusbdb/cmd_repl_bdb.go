//go:build bdb

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/engine"
)

// replEnv returns the replicated Berkeley DB environment of the server's
// database, or an error naming --dir.
func replEnv(db *engine.DB, dir string) (*bdb.Env, error) {
	es, ok := db.Store().(interface{ Env() *bdb.Env })
	if !ok || !es.Env().Replicated() {
		return nil, notReplicated(db, dir)
	}
	return es.Env(), nil
}

// replGroupOf reads the group from the server's environment.
func replGroupOf(db *engine.DB, dir string) (replGroup, error) {
	env, err := replEnv(db, dir)
	if err != nil {
		return replGroup{}, err
	}
	g, err := env.Group()
	if err != nil {
		return replGroup{}, err
	}
	out := replGroup{Dir: dir, Role: db.Role().Role, NSites: g.NSites, Master: g.Master}
	for _, s := range g.Sites {
		out.Sites = append(out.Sites, replSite{Addr: s.Addr, Local: s.Local, Master: s.Master, Connected: s.Connected})
	}
	return out, nil
}

// replRemove removes addr from the group (bdb.Env.RemoveDeadSite; force:
// even if this site is connected to it) and
// returns the group once this site's view has dropped it (see dropped),
// with settled false if it still had not after removeSettle.
func replRemove(ctx context.Context, db *engine.DB, dir, addr string, force bool) (replGroup, bool, error) {
	env, err := replEnv(db, dir)
	if err != nil {
		return replGroup{}, false, err
	}
	if err := env.RemoveDeadSite(addr, force); err != nil {
		return replGroup{}, false, err
	}
	deadline := time.Now().Add(removeSettle)
	for {
		g, err := replGroupOf(db, dir)
		if err != nil {
			return g, false, err
		}
		if dropped(g, addr) {
			return g, true, nil
		}
		if time.Now().After(deadline) {
			return g, false, nil
		}
		select {
		case <-ctx.Done():
			return g, false, fmt.Errorf("remove site %s: wait for the group to drop it: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
