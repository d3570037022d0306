package kv

import (
	"context"
	"errors"
	"time"
)

// Replication configures a site of a replication group (Berkeley DB only:
// another backend refuses a Store opened with it). See docs/REPLICATION.md.
type Replication struct {
	// Listen is this site's replication address host:port (private network:
	// repmgr has no authentication).
	Listen string
	// Peers are other sites' replication addresses, used to join.
	Peers []string
	// Init creates the group: one site, on the group's first start only.
	Init bool
	// Priority is the election priority. 0 means the default (100); a
	// negative value makes the site never master (priority 0 in libdb: it
	// never wins an election and, under the quorum policy, never acks).
	Priority int
	// AckTimeout is how long a commit waits for a quorum of
	// acknowledgements; 0 means 1 s.
	AckTimeout time.Duration
	// HeartbeatMonitor is how long a replica waits for the master's
	// heartbeat before calling an election; 0 means 1 s, negative: off.
	HeartbeatMonitor time.Duration
	// AllowTwoSites accepts a group of fewer than three electable sites
	// (no safe failover: see docs/REPLICATION.md).
	AllowTwoSites bool
	// SerialFlush flushes the master's log only after the replicas have
	// acknowledged a commit, instead of while they do (bdb: for sites
	// that share one disk).
	SerialFlush bool
	// DurusAddr is this site's Durus address (host:port clients and other
	// sites reach), published to the group in replicated meta so that a
	// replica can forward commits to the master and /role can name it.
	DurusAddr string
	// Cancel, if not nil, abandons the open of the site when it is closed
	// while the open waits for the group (repmgr_start retried while no
	// site answers, the wait for a role, for the master's buckets and for
	// its layout): the open then fails with an error wrapping
	// ErrOpenCancelled. Recovery and the other steps are not interrupted.
	// A server closes it on its first stop signal.
	Cancel <-chan struct{}
}

// ErrOpenCancelled: a replication site's open was abandoned while it
// waited for its group (Replication.Cancel).
var ErrOpenCancelled = errors.New("kv: open abandoned while waiting for the replication group")

// CancelContext returns ctx, ended also when r.Cancel is closed (its
// cause then wraps ErrOpenCancelled), and its cancel function.
func (r *Replication) CancelContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if r == nil || r.Cancel == nil {
		return ctx, func() { cancel(nil) }
	}
	stop := make(chan struct{})
	go func() {
		select {
		case <-r.Cancel:
			cancel(ErrOpenCancelled)
		case <-stop:
		case <-ctx.Done():
		}
	}()
	return ctx, func() { close(stop); cancel(nil) }
}

// Role names reported in RoleInfo.Role.
const (
	// RoleStandalone: no replication configured; the site is its own master.
	RoleStandalone = "standalone"
	// RoleMaster: the site of the group that accepts writes.
	RoleMaster = "master"
	// RoleReplica: a synced read-only replica.
	RoleReplica = "replica"
	// RoleStarting: neither master nor replica yet (election, join).
	RoleStarting = "starting"
	// RoleSyncing: a replica that has not finished its start-up sync.
	RoleSyncing = "syncing"
)

// RoleInfo is a site's role as the server and /role report it.
type RoleInfo struct {
	// Role is one of RoleStandalone, RoleMaster, RoleReplica, RoleStarting,
	// RoleSyncing.
	Role string
	// MasterDurusAddr is the master's Durus address, "" if unknown
	// (standalone: this site's own, when known).
	MasterDurusAddr string
	// MasterReplAddr is the master's replication address, "" if unknown
	// or standalone.
	MasterReplAddr string
	// Lag is, on a replica, how long the last replicated change took from
	// the master's commit to its invalidation on this site (the sites'
	// clocks assumed in step); 0 on a master or standalone.
	Lag time.Duration
	// Elections and PermFailed are libdb's election count and the count of
	// commits a quorum did not acknowledge.
	Elections, PermFailed uint64
	// Removed: an operator removed this site from the group (durusbdb
	// repl remove-site); its directory no longer follows the group.
	Removed bool
	// NoQuorum, on a master, says why commits are refused for want of
	// sites (QuorumChecker: the group's very first start, before enough
	// replicas joined); "" when they are accepted. Filled by the engine.
	NoQuorum string
	// Resets counts the site's resets in place since open (a rollback
	// killed its handles, or the master was demoted): each closed every
	// client connection. Filled by the engine.
	Resets uint64
}

// ReplicatedStore is implemented by a Store opened with
// Options.Replication: it reports the site's role and lets the engine
// wait for a commit a master made to be applied here.
type ReplicatedStore interface {
	Store
	// ReplRole returns the current role (MasterDurusAddr is filled by the
	// engine, which knows the published addresses).
	ReplRole() RoleInfo
	// ReplChanged returns a channel closed at the next role change.
	ReplChanged() <-chan struct{}
}

// Reopener is implemented by a replicated Store whose handles a rollback
// can kill (ErrHandleDead): Reopen waits for the site to be synced and
// replaces them with new ones in the same environment, so that the
// process carries on without a restart. Reads and transactions begun
// before keep the old handles until they end.
type Reopener interface {
	Reopen(ctx context.Context) error
}

// QuorumChecker is a ReplicatedStore that tells a master whether enough
// sites have joined the group for a commit to be acknowledged by a quorum
// of its configured size: at a group's very first start the master is
// alone, and the replication layer then acknowledges commits on its disk
// only. The engine refuses commits (nothing stored) while it says no.
type QuorumChecker interface {
	// QuorumShort returns nil when a commit can get a quorum's
	// acknowledgement, else an error wrapping ErrNoQuorum.
	QuorumShort() error
}

// Replication errors a Store opened with Options.Replication returns
// (wrapped by the backend's own sentinels); test with errors.Is.
var (
	// ErrPermFailed: a commit was applied locally but a quorum of sites did
	// not acknowledge it; its outcome is unknown (it may be rolled back).
	ErrPermFailed = errors.New("kv: commit not acknowledged by a quorum of replicas")
	// ErrHandleDead: replication rolled back changes the store's handles
	// had seen; the handles must be reopened (Reopener, or closing and
	// opening the store again) and every cache dropped.
	ErrHandleDead = errors.New("kv: replication invalidated the store's handles")
	// ErrNoQuorum: too few sites have joined the group for a commit to be
	// acknowledged by a quorum (QuorumChecker); nothing was written.
	ErrNoQuorum = errors.New("kv: too few sites in the replication group for a quorum")
)
