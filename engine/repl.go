package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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
// reports kv.RoleStandalone with no address (it is its own master). On a
// replica, Lag is the time from the master's commit of the last change
// followed to its invalidation here (the two sites' clocks are assumed in
// step; it stays at its last value while no change arrives).
func (db *DB) Role() kv.RoleInfo {
	db.role.mu.Lock()
	ri := db.role.info
	db.role.mu.Unlock()
	if ri.Role == "" {
		return kv.RoleInfo{Role: kv.RoleStandalone}
	}
	if ri.Role != kv.RoleMaster {
		ri.Lag = time.Duration(db.changes.lag.Load())
	}
	ri.PermFailed = max(ri.PermFailed, db.permFailed.Load())
	ri.Resets = db.resets.Load()
	if ri.Role == kv.RoleMaster {
		if err := db.quorumShort(); err != nil {
			ri.NoQuorum = err.Error()
		}
	}
	return ri
}

// quorumShort returns the store's kv.QuorumChecker verdict: nil unless
// too few sites of a replication group have joined for a commit (or an
// oid reservation) to be acknowledged by a quorum.
func (db *DB) quorumShort() error {
	if q, ok := db.store.(kv.QuorumChecker); ok {
		return q.QuorumShort()
	}
	return nil
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
	// The role alone, not Role()'s whole report: the server asks once or
	// more per commit.
	db.role.mu.Lock()
	r := db.role.info.Role
	db.role.mu.Unlock()
	return r != "" && r != kv.RoleStandalone && r != kv.RoleMaster
}

// notePermFailed fails every commit of run q with ErrPermFailed: the run
// was applied locally, but a quorum did not acknowledge it, so its outcome
// is unknown and the server must never answer it 'O'.
func (db *DB) notePermFailed(q []*Pending, err error) {
	db.permFailed.Add(uint64(len(q)))
	db.log.Error("engine: commits not acknowledged by a quorum of replicas; their clients get no answer",
		"dir", db.dir, "commits", len(q), "err", err)
	for _, p := range q {
		if p.err == nil {
			p.err = fmt.Errorf("engine: commit oid %d: %w (%w)", p.recs[0].oid, ErrPermFailed, err)
		}
	}
}

// replErr maps a replication error of the store onto the engine's: a
// write refused because this site is not (or no longer) the master gives
// ErrNotMaster, a rollback ErrHandleDead (and asks the role goroutine for a
// reset: it closes every client, reopens the handles and drops every
// cache; see repl_reset.go); nil for any other error or a DB without
// replication.
func (db *DB) replErr(err error) error {
	if db.opts.Replication == nil {
		return nil
	}
	switch {
	case errors.Is(err, kv.ErrHandleDead):
		db.requestReset(fmt.Errorf("replication rolled back changes this site had seen: %w", err))
		return kv.ErrHandleDead
	case errors.Is(err, kv.ErrReadOnly):
		return ErrNotMaster
	}
	return nil
}

// siteOpenTimeout bounds how long a site's open waits for a role and for
// the master's layout.
const siteOpenTimeout = 2 * time.Minute

// MetaSiteAddrPrefix prefixes the meta keys in which each site of a
// replication group publishes its Durus address: key prefix + the site's
// replication address, value its Durus address (FORMAT.md).
const MetaSiteAddrPrefix = "site:"

// openSite finishes the open of a replication site: it waits until the
// site is master or a synced replica; a master opens as a standalone
// writable DB does (creating the layout in a new group), a replica waits
// for the master's layout and loads the counters without writing. Then
// the role goroutine starts (promotion, demotion, rollbacks).
func (db *DB) openSite(ctx context.Context, created bool) error {
	rs, ok := db.store.(kv.ReplicatedStore)
	if !ok {
		return fmt.Errorf("engine: open %s: the %s backend has no replication: %w", db.dir, db.backend, ErrLayout)
	}
	ctx, cancel := context.WithTimeout(ctx, siteOpenTimeout)
	defer cancel()
	// The waits for the group end also at Replication.Cancel; the steps
	// that write (becomeMaster) or follow do not.
	wctx, stop := db.opts.Replication.CancelContext(ctx)
	defer stop()
	abandoned := func(err error) error {
		if cause := context.Cause(wctx); errors.Is(cause, kv.ErrOpenCancelled) {
			return fmt.Errorf("engine: open %s: %w (%v)", db.dir, cause, err)
		}
		return err
	}
	db.changes.kick = make(chan struct{}, 1)
	db.resetReq = make(chan error, 1)
	ri, err := waitRole(wctx, rs, synced)
	if err != nil {
		return abandoned(fmt.Errorf("engine: open %s: wait for a replication role: %w", db.dir, err))
	}
	if ri.Role == kv.RoleMaster {
		if err := db.becomeMaster(ctx, created); err != nil {
			return err
		}
	} else {
		db.replica.Store(true)
		if err := db.loadReplica(wctx); err != nil {
			return abandoned(err)
		}
		if err := db.followFrom(ctx); err != nil {
			return err
		}
	}
	db.setRole(ri)
	db.role.ch = make(chan kv.RoleInfo, 64)
	db.wg.Add(2)
	go db.roleLoop(rs)
	go db.notifyLoop(db.role.ch)
	return nil
}

// synced accepts a master or a synced replica.
func synced(r kv.RoleInfo) bool { return r.Role == kv.RoleMaster || r.Role == kv.RoleReplica }

// waitRole polls rs until ok accepts its role or ctx ends.
func waitRole(ctx context.Context, rs kv.ReplicatedStore, ok func(kv.RoleInfo) bool) (kv.RoleInfo, error) {
	for {
		ch := rs.ReplChanged()
		ri := rs.ReplRole()
		if ok(ri) {
			return ri, nil
		}
		select {
		case <-ctx.Done():
			return ri, fmt.Errorf("role %s: %w", ri.Role, ctx.Err())
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// becomeMaster loads meta and the counters (creating the layout in a new
// group), starts writing (collector, checkpoints) and publishes this
// site's Durus address.
func (db *DB) becomeMaster(ctx context.Context, created bool) error {
	m, err := db.loadMeta(ctx, created)
	if err != nil {
		return err
	}
	c, err := db.loadCounters(ctx, m)
	if err != nil {
		return err
	}
	last, err := db.lastChange(ctx)
	if err != nil {
		return err
	}
	db.writeMu.Lock()
	db.changes.recentMu.Lock()
	db.changes.next = last + 1
	db.changes.recent = [recentChanges]recentChange{} // a former term's entries may have been rolled back
	db.changes.recentMu.Unlock()
	db.writeMu.Unlock()
	db.stopFollowing(last + 1)
	if err := db.startWriting(ctx, c); err != nil {
		return err
	}
	db.replica.Store(false)
	return db.publishAddr(ctx)
}

// loadReplica waits until the master's layout is replicated here, then
// loads meta and the counters read-only.
func (db *DB) loadReplica(ctx context.Context) error {
	t0, said := time.Now(), time.Now()
	for {
		m, _, err := readMeta(ctx, db.store)
		if err == nil && m.has(MetaLayout) {
			break
		}
		if errors.Is(err, kv.ErrHandleDead) {
			// Dead handles do not heal: the caller reopens them (reset).
			return fmt.Errorf("engine: open %s: read the replicated meta: %w", db.dir, err)
		}
		if time.Since(said) >= 5*time.Second {
			said = time.Now()
			db.log.Warn("engine: still waiting to read the master's layout in the replicated meta", "dir", db.dir, "for", time.Since(t0).Round(time.Millisecond), "last", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("engine: open %s: wait for the master's layout: %w (last: %v)", db.dir, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	m, err := db.loadMeta(ctx, false)
	if err != nil {
		return err
	}
	_, err = db.loadCounters(ctx, m)
	return err
}

// publishAddr stores this site's Durus address in replicated meta (a
// master only), so that replicas can name and reach the master.
func (db *DB) publishAddr(ctx context.Context) error {
	r := db.opts.Replication
	if r.DurusAddr == "" {
		return nil
	}
	key := []byte(MetaSiteAddrPrefix + r.Listen)
	err := kv.Update(ctx, db.store, kv.Sync, func(tx kv.Txn) error {
		if v, err := tx.Get(BucketMeta, key); err == nil && string(v) == r.DurusAddr {
			return nil
		}
		return tx.Put(BucketMeta, key, []byte(r.DurusAddr))
	})
	if err != nil && !db.appliedUnacked(err, "the published Durus address") {
		return fmt.Errorf("engine: open %s: publish the Durus address: %w", db.dir, err)
	}
	return nil
}

// durusAddrOf returns the Durus address a site published under its
// replication address, "" if none.
func (db *DB) durusAddrOf(replAddr string) string {
	if replAddr == "" {
		return ""
	}
	var addr string
	_ = kv.View(context.Background(), db.store, func(tx kv.Txn) error {
		v, err := tx.Get(BucketMeta, []byte(MetaSiteAddrPrefix+replAddr))
		if err == nil {
			addr = string(v)
		}
		return nil
	})
	return addr
}

// setRole records ri (naming the master's Durus address) and queues it
// for the OnRoleChange callbacks when it changed.
func (db *DB) setRole(ri kv.RoleInfo) {
	switch ri.Role {
	case kv.RoleMaster:
		ri.MasterDurusAddr = db.opts.Replication.DurusAddr
	default:
		ri.MasterDurusAddr = db.durusAddrOf(ri.MasterReplAddr)
	}
	ri.PermFailed = max(ri.PermFailed, db.permFailed.Load())
	db.role.mu.Lock()
	old := db.role.info
	db.role.info = ri
	ch := db.role.ch
	db.role.mu.Unlock()
	if old.Role == ri.Role && old.MasterDurusAddr == ri.MasterDurusAddr && old.MasterReplAddr == ri.MasterReplAddr {
		return
	}
	db.log.Info("engine: replication role", "dir", db.dir, "role", ri.Role, "master", ri.MasterReplAddr, "master_durus", ri.MasterDurusAddr)
	if ch != nil {
		select {
		case ch <- ri:
		default:
			db.log.Warn("engine: role change notifications overflow; one dropped", "dir", db.dir)
		}
	}
}

// notifyLoop calls the OnRoleChange callbacks, in order, from one
// goroutine. When the DB closes it still delivers the changes queued
// before: a demoted master queues "replica" just before it fails, and a
// watcher that missed it would take the site for a master until it exits.
func (db *DB) notifyLoop(ch <-chan kv.RoleInfo) {
	defer db.wg.Done()
	for {
		select {
		case <-db.ctx.Done():
			for {
				select {
				case ri := <-ch:
					db.notify(ri)
				default:
					return
				}
			}
		case ri := <-ch:
			db.notify(ri)
		}
	}
}

// notify calls every OnRoleChange callback with ri.
func (db *DB) notify(ri kv.RoleInfo) {
	db.role.mu.Lock()
	subs := slices.Clone(db.role.subs)
	db.role.mu.Unlock()
	for _, fn := range subs {
		fn(ri)
	}
}

// otherMaster says whether ri is a replica following another site. A
// demoted master fails only then: after DUPMASTER both masters are
// replicas without a master for a while, and the winner of the election
// that follows reports "elected" and then, a lockout later, master; failing it in between left the group without either.
func (db *DB) otherMaster(ri kv.RoleInfo) bool {
	return ri.Role == kv.RoleReplica && ri.MasterReplAddr != "" && ri.MasterReplAddr != db.opts.Replication.Listen
}

// roleLoop follows the site's role: a replica promoted to master loads the
// engine's state from the replicated meta and starts writing; a master
// that loses the role refuses writes at once and, once it is the replica
// of another master (a partition healed, a stopped master continued), is
// reset in place (repl_reset.go: its clients' caches may hold rolled-back
// records), as is a site whose handles a rollback killed (requestReset);
// if a DUPMASTER election makes it master again it reloads its state like
// a promoted replica. A site removed from the group fails the DB.
func (db *DB) roleLoop(rs kv.ReplicatedStore) {
	defer db.wg.Done()
	for {
		ch := rs.ReplChanged()
		var why error
		select {
		case <-db.ctx.Done():
			return
		case why = <-db.resetReq:
		case <-ch:
		case <-time.After(time.Second):
		}
		ri := rs.ReplRole()
		if ri.Removed {
			db.setRole(ri)
			db.fail(fmt.Errorf("engine: %s: %w", db.dir, ErrSiteRemoved))
			return
		}
		if why == nil {
			var ok bool
			if why, ok = db.followRole(ri); !ok {
				return
			}
		}
		if why != nil {
			if err := db.reset(rs, why); err != nil {
				if db.ctx.Err() == nil {
					db.fail(fmt.Errorf("reset after %v: %w", why, err))
				}
				return
			}
			continue
		}
		if ri.Role == kv.RoleMaster {
			db.demoted = false
		}
		db.setRole(ri)
	}
}

// followRole acts on a role change (promotion, loss of the master role)
// and returns why the site must be reset, or nil; ok is false when a
// failed promotion failed the DB (the role goroutine then ends).
func (db *DB) followRole(ri kv.RoleInfo) (why error, ok bool) {
	wasReplica := db.replica.Load()
	switch {
	case ri.Role == kv.RoleMaster && wasReplica:
		t0 := time.Now()
		if err := db.becomeMaster(db.ctx, false); err != nil {
			db.fail(fmt.Errorf("promotion to master: %w", err))
			return nil, false
		}
		db.log.Info("engine: promoted to master", "took", time.Since(t0), "dir", db.dir, "size", db.size.Load(), "next_oid", db.reserved.Load())
	case ri.Role != kv.RoleMaster && !wasReplica:
		// Writes stop now; a DUPMASTER election may make this site
		// master again (promotion reloads the state), or a replica.
		db.replica.Store(true)
		db.demoted = true
		db.log.Warn("engine: no longer master; writes refused", "dir", db.dir, "role", ri.Role)
	}
	if db.demoted && db.otherMaster(ri) {
		db.setRole(ri)
		return errors.New("demoted from master to replica by the replication group"), true
	}
	return nil, true
}
