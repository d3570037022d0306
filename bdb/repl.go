//go:build bdb

package bdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// Replication errors; test with errors.Is.
var (
	// ErrPermFailed: the commit was applied locally but too few replicas
	// acknowledged it within the ack timeout (DB_EVENT_REP_PERM_FAILED,
	// although DB_TXN->commit returned 0). It may be rolled back by a
	// later election: never report it to a client as committed.
	ErrPermFailed error = &sentinel{msg: "bdb: commit not acknowledged by a quorum of replicas", kv: kv.ErrPermFailed}
	// ErrNotMaster: a write on a replica, where only the master writes
	// (libdb's EACCES on a write of a replicated environment; matches
	// kv.ErrReadOnly).
	ErrNotMaster error = &sentinel{msg: "bdb: not the replication master", kv: kv.ErrReadOnly}
	// ErrHandleDead: replication rolled back a commit this handle had seen
	// (DB_REP_HANDLE_DEAD): close every DB and cursor handle, drop caches
	// and reopen.
	ErrHandleDead error = &sentinel{msg: "bdb: replication invalidated the handle, reopen it", kv: kv.ErrHandleDead}
	// ErrRepUnavail: no master is reachable yet or the site is
	// synchronizing (DB_REP_UNAVAIL, DB_REP_LOCKOUT); retry later.
	ErrRepUnavail error = &sentinel{msg: "bdb: replication unavailable, retry", kv: nil}
	// ErrTimeout: TxnApplied gave up before the transaction arrived
	// (DB_TIMEOUT).
	ErrTimeout error = &sentinel{msg: "bdb: timed out", kv: nil}
	// ErrTwoSites: a group of two electable sites was configured without
	// ReplOptions.AllowTwoSites.
	ErrTwoSites = errors.New("bdb: a two-site replication group has no safe failover; use three sites or allow it explicitly")
)

// replSentinel returns the replication sentinel matching err's libdb code,
// or nil. EACCES counts only on writes: elsewhere it is a file permission.
func replSentinel(err error) error {
	switch libdb.Code(err) {
	case int(libdb.ErrRepHandleDead):
		return ErrHandleDead
	case int(libdb.ErrRepUnavail), int(libdb.ErrRepLockout):
		return ErrRepUnavail
	case int(libdb.ErrTimeout):
		return ErrTimeout
	case int(syscall.EACCES):
		var le *libdb.Error
		if errors.As(err, &le) {
			switch le.Op {
			case "DB->put", "DB->del", "DBC->put", "DBC->del", "DB->truncate", "DB_TXN->commit":
				return ErrNotMaster
			}
		}
	}
	return nil
}

// ReplOptions make OpenEnv open a replicated environment, a site of a
// Berkeley DB Replication Manager group (see docs/REPLICATION.md). Only
// the master writes; every site reads. Opening one ignores SIGPIPE for the whole
// process and sets TCP_NODELAY on every socket libdb connects or accepts
// in it (see libdb.SetTCPNoDelay).
type ReplOptions struct {
	// Listen is this site's replication address, host:port.
	Listen string
	// Peers are other sites' addresses, used to join the group (bootstrap
	// helpers). A restarted site knows the group from its own directory.
	Peers []string
	// Init creates the group (DB_GROUP_CREATOR): set it on one site for the
	// group's very first start only.
	Init bool
	// Priority is the election priority; 0 means 100. NeverMaster makes
	// the site priority 0: never elected and, under the quorum policy,
	// never acknowledging.
	Priority    uint32
	NeverMaster bool
	// AckTimeout is how long a commit waits for a quorum of acks before
	// it fails with ErrPermFailed; 0 means 1 s.
	AckTimeout time.Duration
	// HeartbeatSend (master) and HeartbeatMonitor (replicas) detect a hung
	// master; 0 means 250 ms and 1 s, negative turns them off.
	HeartbeatSend, HeartbeatMonitor time.Duration
	// ConnectionRetry is how long repmgr waits before reconnecting to a
	// site whose connection broke (libdb's default 30 s, which is also how
	// long a continued, stopped master stays unaware of its successor);
	// ElectionRetry is the wait after a failed election (libdb: 10 s).
	// 0 means 1 s for both.
	ConnectionRetry, ElectionRetry time.Duration
	// ElectionTimeout bounds one election's wait for votes; 0 means
	// libdb's 2 s.
	ElectionTimeout time.Duration
	// CheckpointDelay is how long a master's checkpoint waits before its
	// record (libdb's default 30 s); 0 means no delay.
	CheckpointDelay time.Duration
	// NoBulk turns off DB_REP_CONF_BULK (log records batched per message).
	NoBulk bool
	// NoTCPNoDelay leaves Nagle's algorithm on repmgr's sockets (libdb's
	// own behaviour: ~22 commits/s); the default sets TCP_NODELAY.
	NoTCPNoDelay bool
	// SerialFlush leaves a master's own log flush after the replicas'
	// acknowledgement, as libdb does, instead of during it (ackflush.go):
	// for sites that share one disk, where the fsyncs would meet.
	SerialFlush bool
	// AllowTwoSites accepts a group of two sites (Peers of one): it then
	// runs with 2SITE_STRICT off, so a partition can make two masters.
	AllowTwoSites bool
	// VerboseFile, if set, receives libdb's replication messages
	// (DB_VERB_REPLICATION), appended, for diagnosis.
	VerboseFile string
	// Threads is the number of repmgr message threads; 0 means 3.
	Threads int
	// StartTimeout bounds the retries of repmgr_start while the group is
	// unavailable; 0 means 30 s.
	StartTimeout time.Duration
	// Cancel, if not nil, ends those retries when closed: the open fails
	// with an error wrapping kv.ErrOpenCancelled.
	Cancel <-chan struct{}
	// Logger receives role changes and events; nil discards them.
	Logger *slog.Logger
	// OnEvent, if set, is called for each replication event from the
	// event goroutine, after the status was updated; it must not block.
	OnEvent func(libdb.Event, ReplStatus)
}

// Role is a site's replication role.
type Role int

const (
	// RoleStarting: neither master nor replica yet (election or join in
	// progress).
	RoleStarting Role = iota
	// RoleReplica: a read-only replica (synced once ReplStatus.Synced).
	RoleReplica
	// RoleMaster: the site that accepts writes.
	RoleMaster
)

// String returns "starting", "replica" or "master".
func (r Role) String() string {
	switch r {
	case RoleReplica:
		return "replica"
	case RoleMaster:
		return "master"
	}
	return "starting"
}

// ReplStatus is a snapshot of a site's replication state.
type ReplStatus struct {
	Role Role
	// Synced: a master, or a replica that finished its start-up sync
	// (DB_EVENT_REP_STARTUPDONE): its reads are current up to replication
	// lag.
	Synced bool
	// MasterEID is the master's site id, libdb.EIDInvalid when none.
	MasterEID int
	// PermFailed counts commits too few replicas acknowledged; Elections
	// and MasterChanges are libdb's counts; Dropped counts events lost to
	// a full queue.
	PermFailed, Elections, MasterChanges, Dropped uint64
	// Changes increases on every event: a cheap change detector.
	Changes uint64
	// Removed: the group removed this site (DB_EVENT_REP_LOCAL_SITE_REMOVED,
	// an operator's remove-site naming it); its directory no longer
	// follows the group.
	Removed bool
}

// replState is the replication side of an Env: the event queue and the
// goroutine that turns events into a ReplStatus.
type replState struct {
	le      *libdb.Env
	opts    ReplOptions
	log     *slog.Logger
	events  *libdb.Events
	msgFile *libdb.MsgFile // VerboseFile, closed by free
	done    chan struct{}  // closed when loop returns

	permFailed atomic.Uint64
	started    atomic.Bool  // loop was started: done will close
	ackPolicy  atomic.Int32 // the policy set last (tuneAcks), 0 before
	members    atomic.Int32 // the membership libdb counted at the last tuneAcks, 0 before

	ackFlushHook  func() error // tests only: replaces flushDuringAcks's log flush
	preCommitHook func()       // tests only: runs between flushDuringAcks and the commit

	quit     chan struct{} // closed by stop: ends poll
	pollDone chan struct{} // closed when poll returns

	mu      sync.Mutex
	selfEID int // this site's id, from rep_stat
	status  ReplStatus
	changed chan struct{} // closed and replaced on every status change
	stopped bool
}

// splitAddr parses host:port.
func splitAddr(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("bdb: replication address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bdb: replication address %q: bad port", addr)
	}
	return host, port, nil
}

// newReplState configures le, before DB_ENV->open, as a site of the group
// described by o, and attaches the event queue.
func newReplState(le *libdb.Env, o ReplOptions) (*replState, error) {
	if len(o.Peers) == 1 && !o.AllowTwoSites {
		return nil, ErrTwoSites
	}
	host, port, err := splitAddr(o.Listen)
	if err != nil {
		return nil, err
	}
	local := libdb.SiteLocal
	if o.Init {
		local |= libdb.SiteCreator
	}
	if err := le.RepmgrSite(host, port, local); err != nil {
		return nil, fmt.Errorf("local site %s: %w", o.Listen, err)
	}
	for _, p := range o.Peers {
		h, pt, err := splitAddr(p)
		if err != nil {
			return nil, err
		}
		if err := le.RepmgrSite(h, pt, libdb.SiteHelper); err != nil {
			return nil, fmt.Errorf("peer site %s: %w", p, err)
		}
	}
	if err := replTune(le, o); err != nil {
		return nil, err
	}
	var mf *libdb.MsgFile
	if o.VerboseFile != "" {
		var err error
		if mf, err = replVerbose(le, o.VerboseFile); err != nil {
			return nil, err
		}
	}
	q, err := le.AttachEvents()
	if err != nil {
		if mf != nil {
			le.SetMsgFile(nil)
			mf.Close()
		}
		return nil, err
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &replState{
		le: le, opts: o, log: lg, events: q, msgFile: mf, done: make(chan struct{}),
		quit: make(chan struct{}), pollDone: make(chan struct{}), selfEID: libdb.EIDInvalid,
		status:  ReplStatus{MasterEID: libdb.EIDInvalid},
		changed: make(chan struct{}),
	}, nil
}

// replTune sets the ack policy, priority, timeouts and options of o.
func replTune(le *libdb.Env, o ReplOptions) error {
	if err := le.RepmgrSetAckPolicy(libdb.AcksQuorum); err != nil {
		return err
	}
	prio := o.Priority
	if prio == 0 {
		prio = 100
	}
	if o.NeverMaster {
		prio = 0
	}
	if err := le.RepSetPriority(prio); err != nil {
		return err
	}
	dur := func(d, def time.Duration) time.Duration {
		switch {
		case d == 0:
			return def
		case d < 0:
			return 0
		}
		return d
	}
	timeouts := []struct {
		which int
		d     time.Duration
	}{
		{libdb.RepAckTimeout, dur(o.AckTimeout, time.Second)},
		{libdb.RepHeartbeatSend, dur(o.HeartbeatSend, 250*time.Millisecond)},
		{libdb.RepHeartbeatMonitor, dur(o.HeartbeatMonitor, time.Second)},
		{libdb.RepCheckpointDelay, o.CheckpointDelay},
		{libdb.RepConnectionRetry, dur(o.ConnectionRetry, time.Second)},
		{libdb.RepElectionTimeout, dur(o.ElectionTimeout, 2*time.Second)},
		{libdb.RepElectionRetry, dur(o.ElectionRetry, time.Second)},
	}
	for _, t := range timeouts {
		if err := le.RepSetTimeout(t.which, t.d); err != nil {
			return err
		}
	}
	if err := le.RepSetConfig(libdb.RepConfBulk, !o.NoBulk); err != nil {
		return err
	}
	if err := le.RepSetConfig(libdb.RepmgrConf2SiteStrict, !o.AllowTwoSites); err != nil {
		return err
	}
	libdb.SetTCPNoDelay(!o.NoTCPNoDelay)
	return nil
}

// start runs the event loop and repmgr_start (retrying while the group
// is unavailable). SIGPIPE is ignored first: repmgr ignores it only when
// the handler is the default, and a SIGPIPE on a non-Go thread would kill
// the process.
func (r *replState) start() error {
	signal.Ignore(syscall.SIGPIPE)
	r.started.Store(true)
	go r.loop()
	go r.poll(r.quit)
	n := r.opts.Threads
	if n <= 0 {
		n = 3
	}
	limit := r.opts.StartTimeout
	if limit <= 0 {
		limit = 30 * time.Second
	}
	start := time.Now()
	deadline, next := start.Add(limit), start
	for {
		err := r.le.RepmgrStart(n, libdb.RepElection)
		if err == nil {
			return nil
		}
		if libdb.Code(err) != int(libdb.ErrRepUnavail) {
			return err
		}
		if now := time.Now(); now.After(deadline) {
			return fmt.Errorf("no site of the replication group answered within %v (--repl-peer %s): check those addresses, and that a member of the group is running; a group's very first site starts with --repl-init: %w",
				limit, strings.Join(r.opts.Peers, ", "), err)
		} else if !now.Before(next) {
			r.log.Info("replication: waiting for the group: no site answers yet", "peers", strings.Join(r.opts.Peers, ", "), "waited", now.Sub(start).Round(time.Second), "limit", limit)
			next = now.Add(5 * time.Second)
		}
		select {
		case <-r.opts.Cancel: // nil: never
			return fmt.Errorf("no site of the replication group answered in %v (--repl-peer %s): %w",
				time.Since(start).Round(time.Millisecond), strings.Join(r.opts.Peers, ", "), kv.ErrOpenCancelled)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the event loop; it must run before DB_ENV->close. Idempotent.
func (r *replState) stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	already := r.stopped
	r.stopped = true
	r.mu.Unlock()
	if already {
		return
	}
	close(r.quit)
	r.events.Close()
	if r.started.Load() {
		<-r.done
		<-r.pollDone
	}
}

// free releases the event queue and the message file; it must run after
// DB_ENV->close.
func (r *replState) free() {
	if r != nil {
		r.events.Free()
		if r.msgFile != nil {
			r.msgFile.Close()
		}
	}
}

// replVerbose sends libdb's replication messages to path.
func replVerbose(le *libdb.Env, path string) (*libdb.MsgFile, error) {
	mf, err := libdb.OpenMsgFile(path)
	if err != nil {
		return nil, err
	}
	if err := le.SetMsgFile(mf); err != nil {
		mf.Close()
		return nil, err
	}
	if err := le.SetVerbose(libdb.VerbReplication, true); err != nil {
		mf.Close()
		return nil, err
	}
	return mf, nil
}

// loop drains the event queue into the status, and on a master sets the
// ack policy for the membership (tuneAcks) after every event and every
// idle second. It makes no other libdb call: DB_ENV->rep_stat, like most replication API
// calls, waits out the API lockout of an election or role change (libdb's
// own whole-second checks delayed the status, and failover, by 1 s when
// the loop called it; see cgo/libdb/repmgr_wake.c for how they are
// shortened); rep_get_nsites and repmgr_set_ack_policy take no lockout.
func (r *replState) loop() {
	defer close(r.done)
	for {
		ev, ok, closed, dropped := r.events.Wait(time.Second)
		if closed {
			return
		}
		if !ok {
			// A membership read right at an event may not count the
			// site the event added yet: read it again every second.
			r.tuneMaster()
			continue
		}
		st := r.apply(ev, dropped)
		r.tuneMaster()
		switch ev.Kind {
		case libdb.EventPermFailed:
			// Counted per commit by commitTxn; the event only logs.
			r.log.Warn("replication: commit not acknowledged by a quorum")
		case libdb.EventPanic:
			r.log.Error("replication: environment panic, close and reopen")
		default:
			r.log.Info("replication event", "event", ev.Kind.String(), "eid", ev.EID,
				"role", st.Role.String(), "synced", st.Synced, "master", st.MasterEID)
		}
		if r.opts.OnEvent != nil {
			r.opts.OnEvent(ev, st)
		}
	}
}

// apply updates the status for one event.
func (r *replState) apply(ev libdb.Event, dropped uint64) ReplStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	switch ev.Kind {
	case libdb.EventMaster:
		st.Role, st.Synced, st.MasterEID = RoleMaster, true, r.selfEID
	case libdb.EventClient:
		if st.Role != RoleReplica {
			st.Role, st.Synced = RoleReplica, false
		}
	case libdb.EventNewMaster:
		st.MasterEID = ev.EID
		if st.Role == RoleMaster && ev.EID != r.selfEID {
			st.Role, st.Synced = RoleReplica, false
		}
	case libdb.EventStartupDone:
		st.Role, st.Synced = RoleReplica, true
	case libdb.EventMasterFailure:
		st.MasterEID = libdb.EIDInvalid
	case libdb.EventLocalSiteRemoved:
		st.Removed = true
	case libdb.EventDupMaster, libdb.EventPanic:
		st.Role, st.Synced, st.MasterEID = RoleStarting, false, libdb.EIDInvalid
	}
	st.Dropped = dropped
	st.Changes++
	r.publishLocked(st)
	return st
}

// publishLocked stores st and wakes the waiters if it changed; r.mu is
// held.
func (r *replState) publishLocked(st ReplStatus) {
	st.PermFailed = r.permFailed.Load()
	if st == r.status {
		return
	}
	r.status = st
	close(r.changed)
	r.changed = make(chan struct{})
}

// poll runs every half second until quit: it reads rep_stat (which
// waits out an API lockout) for the counters, this site's id, and the
// state events may have left behind (dropped events, a start-up sync that
// completed silently), applied only if no event came meanwhile.
func (r *replState) poll(quit <-chan struct{}) {
	defer close(r.pollDone)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		r.mu.Lock()
		before := r.status.Changes
		r.mu.Unlock()
		rs, err := r.le.RepStat()
		if err != nil {
			continue
		}
		lost := r.masterLost(rs)
		r.mu.Lock()
		r.selfEID = rs.EnvID
		r.publishLocked(mergeStat(r.status, rs, r.status.Changes == before, lost))
		r.mu.Unlock()
	}
}

// masterLost reports whether rs names a remote master this site has no
// connection to (repmgr_site_list): libdb keeps naming a failed master in
// rep_stat while its elections fail, and fires no new-master event when
// the same master is reached again.
func (r *replState) masterLost(rs libdb.RepStat) bool {
	if rs.Status == libdb.RepMaster || rs.Master == libdb.EIDInvalid || rs.Master == rs.EnvID {
		return false
	}
	sites, err := r.le.RepmgrSiteList()
	if err != nil {
		return false
	}
	for _, s := range sites {
		if s.EID == rs.Master {
			return !s.Connected
		}
	}
	return false
}

// mergeStat returns st updated from a rep_stat snapshot rs: the counters
// always, the role and master only when no event came since rs was asked
// for (quiet); no master when masterLost (the connection to the master rs
// names is down). A replica counts as synced from rs only once it knows its
// master: libdb clears st_startup_complete when a client learns of a new
// master, not when a master becomes a client, so a demoted master still
// reports its old flag, with no master, until it has met its successor
// (and perhaps rolled back); synced then, its handles would be reopened
// before that rollback kills them.
func mergeStat(st ReplStatus, rs libdb.RepStat, quiet, masterLost bool) ReplStatus {
	st.Elections, st.MasterChanges = rs.Elections, rs.MasterChanges
	if !quiet {
		return st
	}
	switch rs.Status {
	case libdb.RepMaster:
		st.Role, st.Synced = RoleMaster, true
	case libdb.RepClientStatus:
		st.Synced = st.Synced || (st.Role == RoleReplica && rs.StartupComplete && rs.Master != libdb.EIDInvalid)
		st.Role = RoleReplica
	}
	st.MasterEID = rs.Master
	if masterLost && rs.Status != libdb.RepMaster {
		st.MasterEID = libdb.EIDInvalid
	}
	return st
}

// snapshot returns the status and the channel closed at its next change.
func (r *replState) snapshot() (ReplStatus, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.PermFailed = r.permFailed.Load()
	return st, r.changed
}

// Replicated reports whether the environment is a replication site.
func (e *Env) Replicated() bool { return e.repl != nil }

// ReplStatus returns the site's replication state (the zero ReplStatus
// when the environment is not replicated).
func (e *Env) ReplStatus() ReplStatus {
	if e.repl == nil {
		return ReplStatus{}
	}
	st, _ := e.repl.snapshot()
	return st
}

// WaitRepl waits until ok accepts the replication status and returns it,
// or returns ctx's error with the last status.
func (e *Env) WaitRepl(ctx context.Context, ok func(ReplStatus) bool) (ReplStatus, error) {
	if e.repl == nil {
		return ReplStatus{}, errf("wait for replication state of %s: not replicated", e.dir)
	}
	for {
		st, ch := e.repl.snapshot()
		if ok(st) {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("bdb: wait for replication state of %s (now %s): %w", e.dir, st.Role, ctx.Err())
		case <-ch:
		}
	}
}

// RepStat returns libdb's replication statistics (LSNs, counters) for
// metrics. See DB_ENV->rep_stat.
func (e *Env) RepStat() (libdb.RepStat, error) {
	if err := e.enter(); err != nil {
		return libdb.RepStat{}, err
	}
	defer e.leave()
	if e.repl == nil {
		return libdb.RepStat{}, errf("replication status of %s: not replicated", e.dir)
	}
	rs, err := e.env.RepStat()
	return rs, wrap("replication status of "+e.dir, err)
}

// ReplSites returns the number of sites in the group's membership as this
// site knows it (DB_ENV->rep_get_nsites: repmgr's membership table, which
// grows as sites join). It takes no replication lockout.
func (e *Env) ReplSites() (int, error) {
	if err := e.enter(); err != nil {
		return 0, err
	}
	defer e.leave()
	if e.repl == nil {
		return 0, errf("sites of %s: not replicated", e.dir)
	}
	n, err := e.env.RepGetNsites()
	if err != nil {
		return 0, wrap("replication sites of "+e.dir, err)
	}
	return n, nil
}

// ackPolicyFor returns the acknowledgement policy that makes a master wait
// for the acknowledgements a commit needs to survive an election of the
// group: (m-1)/2 other sites, m the larger of the configured group
// (Peers+1) and the membership known so far. libdb's QUORUM counts only
// the known membership (repmgr_msg.c __repmgr_send: (nsites-1)/2 other
// sites, with 2SITE_STRICT), so while a group configured for three sites
// has only two members (the last site not joined yet, or not yet known to
// this site) it asks for none: a commit on the master alone would be
// answered, and lost if the master died once the third site had joined
// (TestReplPermFailedWhileJoining). ALL (every known site) is then used:
// stricter than needed where more than the needed sites are known (a
// 5-site group with 4 members and one of them down refuses commits until
// the fifth joins), never weaker; with no other site known, libdb can ask
// for nothing. The same holds after a site was removed while the sites'
// --repl-peer flags still name it: the group then still waits for the
// acknowledgements of the configured size.
func ackPolicyFor(members, configured int, strict bool) int {
	_, want := acksNeeded(members, configured)
	others := members - 1
	quorum := 1 // what QUORUM asks for
	if others > 1 || strict {
		quorum = others / 2
	}
	if quorum >= want {
		return libdb.AcksQuorum
	}
	return libdb.AcksAll
}

// acksNeeded returns the size m of the group a commit must survive an
// election of (the larger of the configured group and the membership
// known so far) and the acknowledgements of other sites that takes,
// (m-1)/2: the master plus those make a majority of m.
func acksNeeded(members, configured int) (m, want int) {
	m = max(members, configured)
	return m, (m - 1) / 2
}

// tuneAcks sets the acknowledgement policy for the membership known now
// (ackPolicyFor). commitTxn calls it before every replicated commit (one
// rep_get_nsites, a mutex in libdb: the membership libdb counts when it
// sends that commit; SITE_ADDED and SITE_REMOVED fire before libdb
// adjusts its count, so an event-driven update came late); the event
// loop calls it on a master at events and every idle second, so the
// policy is right before the next commit too. A replica leaves its
// policy alone (a change is broadcast to the group).
func (r *replState) tuneAcks() {
	n, err := r.le.RepGetNsites()
	if err != nil {
		// EINVAL before repmgr_start has loaded the membership: the
		// policy set at open (QUORUM) stays until the next read.
		r.log.Debug("replication: read the group's membership", "err", err)
		return
	}
	r.members.Store(int32(n))
	p := ackPolicyFor(n, len(r.opts.Peers)+1, !r.opts.AllowTwoSites)
	if int(r.ackPolicy.Load()) == p {
		return
	}
	if err := r.le.RepmgrSetAckPolicy(p); err != nil {
		r.log.Warn("replication: set the acknowledgement policy", "err", err)
		return
	}
	r.ackPolicy.Store(int32(p))
	r.log.Info("replication: acknowledgement policy", "members", n, "configured", len(r.opts.Peers)+1,
		"policy", map[int]string{libdb.AcksQuorum: "quorum", libdb.AcksAll: "all"}[p])
}

// tuneMaster calls tuneAcks on a master.
func (r *replState) tuneMaster() {
	r.mu.Lock()
	master := r.status.Role == RoleMaster
	r.mu.Unlock()
	if master {
		r.tuneAcks()
	}
}

// MasterAddr returns the current master's replication address (host:port)
// from rep_stat and the site table, or an error wrapping ErrRepUnavail
// when no master is known.
func (e *Env) MasterAddr() (string, error) {
	if err := e.enter(); err != nil {
		return "", err
	}
	defer e.leave()
	if e.repl == nil {
		return "", errf("master of %s: not replicated", e.dir)
	}
	rs, err := e.env.RepStat()
	if err != nil {
		return "", wrap("replication status of "+e.dir, err)
	}
	if rs.Master == libdb.EIDInvalid {
		return "", opErr("master of "+e.dir, ErrRepUnavail, nil)
	}
	host, port, err := e.env.RepmgrSiteAddress(rs.Master)
	if err != nil {
		return "", wrap("address of site "+strconv.Itoa(rs.Master)+" of "+e.dir, err)
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// RemoveSite removes the site at addr from the group for good (it then no
// longer counts in the quorum). Run it on the master, for a site that is
// down. See DB_SITE->remove.
func (e *Env) RemoveSite(addr string) error {
	host, port, err := splitAddr(addr)
	if err != nil {
		return err
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	return wrap("remove site "+addr+" from the group of "+e.dir, e.env.RepmgrRemoveSite(host, port))
}

// CommitToken identifies a committed transaction across the group (20
// bytes, DB_TXN_TOKEN): pass it to TxnApplied on another site.
type CommitToken [libdb.TokenSize]byte

// CommitToken commits like Commit and returns the commit token, for
// read-your-writes on another site (see TxnApplied).
func (t *Txn) CommitToken(d kv.Durability) (CommitToken, error) {
	var tok CommitToken
	if err := t.lock(); err != nil {
		return tok, err
	}
	defer t.mu.Unlock()
	t.token = (*[libdb.TokenSize]byte)(&tok)
	err := t.endLocked(true, commitFlags(d), false)
	return tok, err
}

// commitTxn commits lt for t; in a replicated environment (or for a
// commit token) it detects DB_EVENT_REP_PERM_FAILED of this very commit
// and returns ErrPermFailed.
func (e *Env) commitTxn(lt *libdb.Txn, flags uint32, token *[libdb.TokenSize]byte) error {
	if e.repl == nil && token == nil {
		return lt.Commit(flags)
	}
	if e.repl != nil {
		e.repl.tuneAcks()
		if !e.repl.opts.SerialFlush {
			defer e.flushDuringAcks(flags)()
		}
		if h := e.repl.preCommitHook; h != nil {
			h()
		}
	}
	pf, err := lt.CommitRep(flags, token)
	if err != nil {
		return err
	}
	if pf {
		if e.repl != nil {
			e.repl.permFailed.Add(1)
		}
		return ErrPermFailed
	}
	return nil
}

// TxnApplied waits up to timeout for the transaction of tok to be applied
// at this site: nil once it is, ErrTimeout, or ErrNotFound when a master
// change rolled it back. See DB_ENV->txn_applied.
func (e *Env) TxnApplied(tok CommitToken, timeout time.Duration) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	return wrap("wait for a transaction in "+e.dir, e.env.TxnApplied(tok, timeout))
}

// OpenDBReplicated opens a database of a replicated environment once the
// site can: on the master as OpenDB does, on a synced replica without
// DB_CREATE, waiting (until ctx ends) while the file is not replicated
// yet (ENOENT), the group is unavailable or handles died in a rollback.
func (e *Env) OpenDBReplicated(ctx context.Context, file string, opts DBOptions) (*DB, error) {
	for {
		st, err := e.WaitRepl(ctx, func(s ReplStatus) bool { return s.Synced })
		if err != nil {
			return nil, err
		}
		o := opts
		if st.Role != RoleMaster {
			o.Create = false
		}
		d, err := e.OpenDB(file, o)
		if err == nil {
			return d, nil
		}
		if !retryableRepl(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bdb: open %s in %s: %w (last: %v)", file, e.dir, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retryableRepl reports errors that a replica outgrows: a file not
// replicated yet, no master, a rollback, a role change under the call,
// and a deadlock: the master's DB->open (its own transaction, which
// libdb aborted) chosen as the victim against a replication message
// thread reading the same file for a replica's first copy (three sites
// started at once: scripts/rig-group.sh met it).
func retryableRepl(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrRepUnavail) ||
		errors.Is(err, ErrHandleDead) || errors.Is(err, ErrNotMaster) ||
		errors.Is(err, ErrDeadlock)
}
