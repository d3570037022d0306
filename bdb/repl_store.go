//go:build bdb

package bdb

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

var _ kv.ReplicatedStore = (*Store)(nil)

// replOpenTimeout bounds how long OpenStore waits for a replica to sync
// and for the master to have created every bucket.
const replOpenTimeout = 2 * time.Minute

// replOptions maps the backend-neutral kv.Replication onto ReplOptions:
// Priority 0 is the default (100), negative means never master.
func replOptions(r *kv.Replication, opts kv.Options) *ReplOptions {
	o := &ReplOptions{
		Listen: r.Listen, Peers: append([]string(nil), r.Peers...), Init: r.Init,
		AckTimeout: r.AckTimeout, HeartbeatMonitor: r.HeartbeatMonitor,
		AllowTwoSites: r.AllowTwoSites, SerialFlush: r.SerialFlush, Logger: opts.Logger,
		Cancel: r.Cancel,
	}
	switch {
	case r.Priority < 0:
		o.NeverMaster = true
	case r.Priority > 0:
		o.Priority = uint32(r.Priority)
	}
	return o
}

// openBucketsReplicated opens the bucket databases of a replication site
// into dbs: on the master as openBuckets does (creating the missing ones),
// on a replica once it is synced and the master created them (until ctx
// ends). On error the caller closes what dbs holds.
func (s *Store) openBucketsReplicated(ctx context.Context, specs []kv.BucketSpec, dbs map[string]*DB) error {
	for _, b := range specs {
		if _, dup := dbs[b.Name]; dup {
			return fmt.Errorf("bdb: open %s: bucket %q given twice", s.dir, b.Name)
		}
		db, err := s.env.OpenDBReplicated(ctx, b.File, bucketOptions(b))
		if err != nil {
			return fmt.Errorf("bdb: open %s: bucket %s: %w", s.dir, b.File, err)
		}
		dbs[b.Name] = db
	}
	return nil
}

// ReplRole reports the site's role from the replication status (tracked
// from repmgr's events) and names the master's replication address from
// its site id (repmgr_site_by_eid): no rep_stat, which waits out a role
// change's lockout.
func (s *Store) ReplRole() kv.RoleInfo {
	st := s.env.ReplStatus()
	ri := kv.RoleInfo{Elections: st.Elections, PermFailed: st.PermFailed, Removed: st.Removed}
	switch {
	case st.Role == RoleMaster:
		ri.Role = kv.RoleMaster
	case st.Role == RoleReplica && st.Synced:
		ri.Role = kv.RoleReplica
	case st.Role == RoleReplica:
		ri.Role = kv.RoleSyncing
	default:
		ri.Role = kv.RoleStarting
	}
	switch {
	case st.Role == RoleMaster:
		ri.MasterReplAddr = s.env.repl.opts.Listen
	case st.Role == RoleReplica && st.MasterEID >= 0:
		ri.MasterReplAddr = s.env.siteAddr(st.MasterEID)
	}
	return ri
}

// siteAddr returns the replication address of site eid, "" if unknown.
func (e *Env) siteAddr(eid int) string {
	if err := e.enter(); err != nil {
		return ""
	}
	defer e.leave()
	host, port, err := e.env.RepmgrSiteAddress(eid)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// ReplChanged returns a channel closed at the next replication event.
func (s *Store) ReplChanged() <-chan struct{} {
	if s.env.repl == nil {
		return nil
	}
	_, ch := s.env.repl.snapshot()
	return ch
}

var _ kv.QuorumChecker = (*Store)(nil)

// QuorumShort implements kv.QuorumChecker: on a site whose group has
// fewer members (as the master last counted them: at every commit,
// replication event and idle second) than a commit's acknowledgement
// needs, (m-1)/2 other sites of the configured size m, it returns an
// error wrapping kv.ErrNoQuorum. libdb asks no acknowledgement from sites
// that have not joined: at a group's very first start the master would
// acknowledge commits on its own disk alone (see ackPolicyFor).
func (s *Store) QuorumShort() error {
	r := s.env.repl
	if r == nil {
		return nil
	}
	n := int(r.members.Load())
	if n == 0 {
		return nil // not counted yet: a replica, or before the first event
	}
	if m, want := acksNeeded(n, len(r.opts.Peers)+1); n-1 < want {
		return fmt.Errorf("bdb: %s: %d of the replication group's %d sites have joined; a commit needs %d of them on disk (start the other sites): %w",
			s.dir, n, m, want+1, kv.ErrNoQuorum)
	}
	return nil
}
