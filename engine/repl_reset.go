package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// ErrSiteRemoved fails the DB of a site that an operator removed from its
// replication group (durusbdb repl remove-site naming it): its directory
// no longer follows the group, so it must not serve.
var ErrSiteRemoved = errors.New("engine: this site was removed from the replication group; its directory no longer follows the group")

// SiteRemovedAdvice is what a site removed from its group says when it
// stops: what a restart would do, and what to do instead.
const SiteRemovedAdvice = "this site was removed from its replication group (durusbdb repl remove-site): started again on this directory it would rejoin the group (libdb adds it back), so empty or destroy the directory, drop its --repl-peer from the other sites' configuration, and add the machine again, if ever, as a new site from an empty directory"

// follower is one run of a replica's change follower (changesLoop),
// owned by the role goroutine: stop ends it (after reporting up to the
// promoted master's first entry, or nothing when quiet is set first);
// done is closed when it has ended.
type follower struct {
	stop  chan struct{}
	done  chan struct{}
	quiet atomic.Bool
}

// requestReset asks the role goroutine to reset the site (see reset): a
// load, a commit or the change follower met handles a rollback killed.
// Requests made while one is pending or running are folded into it. A DB
// without a role goroutine fails instead.
func (db *DB) requestReset(why error) {
	if db.resetReq == nil {
		db.fail(fmt.Errorf("%w: the handles cannot be reopened here; restart", why))
		return
	}
	select {
	case db.resetReq <- why:
		db.log.Warn("engine: reset of the site requested", "dir", db.dir, "why", why)
	default:
	}
}

// reset puts a site whose handles died, or a master demoted to a replica,
// back in service in the same process, from the role goroutine: writes
// are refused, the change follower is halted, and once the site is synced
// again every Durus client is closed (Options.OnReset; their caches may
// hold records the rollback removed), the store's handles are reopened,
// the record cache is emptied (a load that read the old handles carries
// an old epoch: its fill is refused), the forwarded commits' holds are
// released, and the site goes on as a replica following the change table
// from its end (or as master, if an election made it one meanwhile).
func (db *DB) reset(rs kv.ReplicatedStore, why error) error {
	t0 := time.Now()
	db.log.Warn("engine: resetting the site in place: closing its clients, reopening its handles", "dir", db.dir, "why", why)
	db.replica.Store(true)
	db.haltFollowing()
	ro, ok := db.store.(kv.Reopener)
	if !ok {
		return fmt.Errorf("engine: reset %s: the %s store cannot reopen its handles: %w", db.dir, db.backend, ErrLayout)
	}
	ctx, cancel := context.WithTimeout(db.ctx, siteOpenTimeout)
	defer cancel()
	if _, err := waitRole(ctx, rs, synced); err != nil {
		return fmt.Errorf("engine: reset %s: wait for a synced role: %w", db.dir, err)
	}
	if f := db.opts.OnReset; f != nil {
		// New clients wait until the site follows again: one that loaded
		// before could read a rolled-back record (old handles, the cache)
		// or miss the report of a change applied before followFrom.
		if done := f(why); done != nil {
			defer done()
		}
	}
	var ri kv.RoleInfo
	for again := 0; ; again++ {
		if err := ro.Reopen(ctx); err != nil {
			return fmt.Errorf("engine: reset %s: %w", db.dir, err)
		}
		db.cache.purge()
		db.fwd.releaseAll()
		db.log.Info("engine: reset: handles reopened; loading the replicated state", "dir", db.dir, "after", time.Since(t0).Round(time.Millisecond))
		var err error
		if ri, err = waitRole(ctx, rs, synced); err != nil {
			return fmt.Errorf("engine: reset %s: wait for a synced role: %w", db.dir, err)
		}
		if ri.Role == kv.RoleMaster {
			err = db.becomeMaster(ctx, false)
		} else if err = db.loadReplica(ctx); err == nil {
			err = db.followFrom(ctx)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, kv.ErrHandleDead) || ctx.Err() != nil {
			return fmt.Errorf("engine: reset %s as %s: %w", db.dir, ri.Role, err)
		}
		// A rollback killed the new handles too: the synced role seen
		// before the reopen was stale (a demoted master's start-up flag
		// from before its demotion), or libdb synced again since. Reopen
		// once more; the site is not serving meanwhile.
		db.log.Warn("engine: reset: the reopened handles died too (a rollback after the reopen); reopening again", "dir", db.dir, "reopens", again+2, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	db.demoted = false
	db.setRole(ri)
	// A request made by a read of the old handles is answered by this
	// reset.
	select {
	case <-db.resetReq:
	default:
	}
	db.resets.Add(1)
	db.log.Info("engine: site reset in place", "dir", db.dir, "role", ri.Role, "took", time.Since(t0))
	return nil
}

// Resets returns how many times the site was reset in place (see reset)
// since open.
func (db *DB) Resets() uint64 { return db.resets.Load() }
