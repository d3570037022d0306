//go:build bdb

package libdb

/*
#cgo LDFLAGS: -ldb -ldl
#include <stdlib.h>
#include "repmgrgo.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"
)

// Replication return codes.
const (
	ErrRepHandleDead Errno = C.DB_REP_HANDLE_DEAD // DB_REP_HANDLE_DEAD: a rollback invalidated the handle; reopen it
	ErrRepUnavail    Errno = C.DB_REP_UNAVAIL     // DB_REP_UNAVAIL: no master reachable yet; retry
	ErrRepLockout    Errno = C.DB_REP_LOCKOUT     // DB_REP_LOCKOUT: replication is synchronizing; retry
	ErrTimeout       Errno = C.DB_TIMEOUT         // DB_TIMEOUT: txn_applied timed out
)

// Replication configuration constants.
const (
	// DB_ENV->open
	InitRep uint32 = C.DB_INIT_REP // DB_INIT_REP

	// DB_ENV->repmgr_start
	RepElection uint32 = C.DB_REP_ELECTION // DB_REP_ELECTION: start by holding an election
	RepClient   uint32 = C.DB_REP_CLIENT   // DB_REP_CLIENT: start as a replica

	// DB_ENV->rep_set_config
	RepConfBulk           uint32 = C.DB_REP_CONF_BULK            // DB_REP_CONF_BULK: batch log records in one message
	RepmgrConf2SiteStrict uint32 = C.DB_REPMGR_CONF_2SITE_STRICT // DB_REPMGR_CONF_2SITE_STRICT
	RepmgrConfElections   uint32 = C.DB_REPMGR_CONF_ELECTIONS    // DB_REPMGR_CONF_ELECTIONS: automatic elections

	// DB_ENV->repmgr_set_ack_policy
	AcksAll    int = C.DB_REPMGR_ACKS_ALL    // DB_REPMGR_ACKS_ALL
	AcksNone   int = C.DB_REPMGR_ACKS_NONE   // DB_REPMGR_ACKS_NONE
	AcksOne    int = C.DB_REPMGR_ACKS_ONE    // DB_REPMGR_ACKS_ONE
	AcksQuorum int = C.DB_REPMGR_ACKS_QUORUM // DB_REPMGR_ACKS_QUORUM: a majority of electable sites

	// DB_ENV->rep_set_timeout
	RepAckTimeout       int = C.DB_REP_ACK_TIMEOUT       // DB_REP_ACK_TIMEOUT
	RepCheckpointDelay  int = C.DB_REP_CHECKPOINT_DELAY  // DB_REP_CHECKPOINT_DELAY
	RepConnectionRetry  int = C.DB_REP_CONNECTION_RETRY  // DB_REP_CONNECTION_RETRY
	RepElectionRetry    int = C.DB_REP_ELECTION_RETRY    // DB_REP_ELECTION_RETRY
	RepElectionTimeout  int = C.DB_REP_ELECTION_TIMEOUT  // DB_REP_ELECTION_TIMEOUT
	RepHeartbeatMonitor int = C.DB_REP_HEARTBEAT_MONITOR // DB_REP_HEARTBEAT_MONITOR
	RepHeartbeatSend    int = C.DB_REP_HEARTBEAT_SEND    // DB_REP_HEARTBEAT_SEND

	// rep_stat status
	RepMaster       uint32 = C.DB_REP_MASTER // DB_REP_MASTER
	RepClientStatus uint32 = C.DB_REP_CLIENT // DB_REP_CLIENT as a status

	// EIDInvalid is DB_EID_INVALID: no site (no master known).
	EIDInvalid = C.DB_EID_INVALID
)

// EventKind is a DB_EVENT_* code delivered by the Replication Manager.
type EventKind int

// Replication events. See DB_ENV->set_event_notify.
const (
	EventPanic            EventKind = C.DB_EVENT_PANIC
	EventClient           EventKind = C.DB_EVENT_REP_CLIENT
	EventConnectBroken    EventKind = C.DB_EVENT_REP_CONNECT_BROKEN
	EventConnectEstd      EventKind = C.DB_EVENT_REP_CONNECT_ESTD
	EventConnectTryFailed EventKind = C.DB_EVENT_REP_CONNECT_TRY_FAILED
	EventDupMaster        EventKind = C.DB_EVENT_REP_DUPMASTER
	EventElected          EventKind = C.DB_EVENT_REP_ELECTED
	EventElectionFailed   EventKind = C.DB_EVENT_REP_ELECTION_FAILED
	EventInitDone         EventKind = C.DB_EVENT_REP_INIT_DONE
	EventJoinFailure      EventKind = C.DB_EVENT_REP_JOIN_FAILURE
	EventLocalSiteRemoved EventKind = C.DB_EVENT_REP_LOCAL_SITE_REMOVED
	EventMaster           EventKind = C.DB_EVENT_REP_MASTER
	EventMasterFailure    EventKind = C.DB_EVENT_REP_MASTER_FAILURE
	EventNewMaster        EventKind = C.DB_EVENT_REP_NEWMASTER
	EventPermFailed       EventKind = C.DB_EVENT_REP_PERM_FAILED
	EventSiteAdded        EventKind = C.DB_EVENT_REP_SITE_ADDED
	EventSiteRemoved      EventKind = C.DB_EVENT_REP_SITE_REMOVED
	EventStartupDone      EventKind = C.DB_EVENT_REP_STARTUPDONE
	EventWouldRollback    EventKind = C.DB_EVENT_REP_WOULD_ROLLBACK
)

var eventNames = map[EventKind]string{
	EventPanic: "panic", EventClient: "client", EventConnectBroken: "connect_broken",
	EventConnectEstd: "connect_established", EventConnectTryFailed: "connect_try_failed",
	EventDupMaster: "dupmaster", EventElected: "elected", EventElectionFailed: "election_failed",
	EventInitDone: "init_done", EventJoinFailure: "join_failure",
	EventLocalSiteRemoved: "local_site_removed", EventMaster: "master",
	EventMasterFailure: "master_failure", EventNewMaster: "newmaster",
	EventPermFailed: "perm_failed", EventSiteAdded: "site_added",
	EventSiteRemoved: "site_removed", EventStartupDone: "startupdone",
	EventWouldRollback: "would_rollback",
}

// String returns the event's name without the DB_EVENT_REP_ prefix, in
// lower case ("newmaster").
func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is one replication event; EID is the new master's site id for
// EventNewMaster, else EIDInvalid.
type Event struct {
	Kind EventKind
	EID  int
}

// Site bits for RepmgrSite.
const (
	SiteLocal   uint32 = 1 // DB_LOCAL_SITE: this process's own address
	SiteCreator uint32 = 2 // DB_GROUP_CREATOR: first start of a new group
	SiteHelper  uint32 = 4 // DB_BOOTSTRAP_HELPER: a site to join through
	SitePeer    uint32 = 8 // DB_REPMGR_PEER: client-to-client sync source
)

// Events is the event queue of one environment: a C ring filled by
// libdb's event callback. Attach it before Open; after the environment is
// closed, call Close, let the reader see Wait's closed result, then Free.
type Events struct {
	r *C.dbgo_rep
}

// AttachEvents installs the event callback (DB_ENV->set_event_notify) and
// returns the queue it fills. The first call also installs, for the whole
// process, a DB_ENV yield function (db_env_set_func_yield) under which
// libdb's sleeps of a second or more end at the next replication event:
// a thread that meets a role change's lockout (txn_begin, DB->get) then
// waits as long as the lockout lasts, not libdb's fixed 5 s (see
// repmgr_wake.c).
func (e *Env) AttachEvents() (*Events, error) {
	if e.p == nil {
		return nil, errInvalid("DB_ENV->set_event_notify")
	}
	var r *C.dbgo_rep
	if rc := C.dbgo_rep_attach(e.p, &r); rc != 0 {
		return nil, newError("DB_ENV->set_event_notify", rc)
	}
	return &Events{r: r}, nil
}

// Wait returns the oldest queued event, waiting up to timeout; ok is false
// after a timeout; closed is true once Close was called and the queue is
// empty. dropped counts events lost to a full ring so far.
func (q *Events) Wait(timeout time.Duration) (ev Event, ok, closed bool, dropped uint64) {
	var ce C.dbgo_rep_event
	var d C.u_int64_t
	rc := C.dbgo_rep_wait(q.r, C.int(timeout/time.Millisecond), &ce, &d)
	return Event{Kind: EventKind(ce._type), EID: int(ce.eid)}, rc == 1, rc == -1, uint64(d)
}

// Close wakes the reader for good; call it after the environment closed.
func (q *Events) Close() { C.dbgo_rep_close(q.r) }

// Free releases the queue; no Wait may be running or follow.
func (q *Events) Free() {
	if q.r != nil {
		C.dbgo_rep_free(q.r)
		q.r = nil
	}
}

// RepmgrSite configures a site of the group at host:port with the Site*
// bits (SiteLocal for this process's address). See DB_ENV->repmgr_site
// and DB_SITE->set_config.
func (e *Env) RepmgrSite(host string, port int, which uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->repmgr_site")
	}
	h := cstr(host)
	defer C.free(unsafe.Pointer(h))
	var eid C.int
	if rc := C.dbgo_repmgr_site(e.p, h, C.u_int(port), C.u_int32_t(which), 0, &eid); rc != 0 {
		return newError("DB_ENV->repmgr_site", rc)
	}
	return nil
}

// RepmgrRemoveSite removes host:port from the group's membership for good,
// so that it no longer counts in the quorum. It runs on the master (or is
// forwarded to it). See DB_SITE->remove.
func (e *Env) RepmgrRemoveSite(host string, port int) error {
	if e.p == nil {
		return errInvalid("DB_SITE->remove")
	}
	h := cstr(host)
	defer C.free(unsafe.Pointer(h))
	if rc := C.dbgo_repmgr_remove_site(e.p, h, C.u_int(port)); rc != 0 {
		return newError("DB_SITE->remove", rc)
	}
	return nil
}

// RepmgrSiteAddress returns the address of site eid. See
// DB_ENV->repmgr_site_by_eid and DB_SITE->get_address.
func (e *Env) RepmgrSiteAddress(eid int) (host string, port int, err error) {
	if e.p == nil {
		return "", 0, errInvalid("DB_ENV->repmgr_site_by_eid")
	}
	var buf [256]C.char
	var p C.u_int
	if rc := C.dbgo_repmgr_site_address(e.p, C.int(eid), &buf[0], C.size_t(len(buf)), &p); rc != 0 {
		return "", 0, newError("DB_ENV->repmgr_site_by_eid", rc)
	}
	return C.GoString(&buf[0]), int(p), nil
}

// RepmgrSetAckPolicy sets the acknowledgement policy (AcksQuorum, ...).
// See DB_ENV->repmgr_set_ack_policy.
func (e *Env) RepmgrSetAckPolicy(policy int) error {
	if e.p == nil {
		return errInvalid("DB_ENV->repmgr_set_ack_policy")
	}
	if rc := C.dbgo_repmgr_set_ack_policy(e.p, C.int(policy)); rc != 0 {
		return newError("DB_ENV->repmgr_set_ack_policy", rc)
	}
	return nil
}

// RepSetPriority sets the election priority; 0 means never master (and,
// under AcksQuorum, never acknowledging). See DB_ENV->rep_set_priority.
func (e *Env) RepSetPriority(p uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->rep_set_priority")
	}
	if rc := C.dbgo_rep_set_priority(e.p, C.u_int32_t(p)); rc != 0 {
		return newError("DB_ENV->rep_set_priority", rc)
	}
	return nil
}

// RepSetTimeout sets one of the Rep*Timeout/Heartbeat/Delay timeouts, in
// microseconds' resolution. See DB_ENV->rep_set_timeout.
func (e *Env) RepSetTimeout(which int, d time.Duration) error {
	if e.p == nil {
		return errInvalid("DB_ENV->rep_set_timeout")
	}
	if rc := C.dbgo_rep_set_timeout(e.p, C.int(which), C.u_int32_t(d/time.Microsecond)); rc != 0 {
		return newError("DB_ENV->rep_set_timeout", rc)
	}
	return nil
}

// RepSetConfig turns a replication option (RepConfBulk,
// RepmgrConf2SiteStrict, ...) on or off. See DB_ENV->rep_set_config.
func (e *Env) RepSetConfig(which uint32, on bool) error {
	if e.p == nil {
		return errInvalid("DB_ENV->rep_set_config")
	}
	if rc := C.dbgo_rep_set_config(e.p, C.u_int32_t(which), cbool(on)); rc != 0 {
		return newError("DB_ENV->rep_set_config", rc)
	}
	return nil
}

// RepmgrStart starts the Replication Manager's threads (nthreads message
// threads) with RepElection or RepClient. The caller must have ignored
// SIGPIPE first. See DB_ENV->repmgr_start.
func (e *Env) RepmgrStart(nthreads int, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->repmgr_start")
	}
	if rc := C.dbgo_repmgr_start(e.p, C.int(nthreads), C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->repmgr_start", rc)
	}
	return nil
}

// RepStat is the replication state. See DB_ENV->rep_stat.
type RepStat struct {
	Status          uint32 // RepMaster, RepClientStatus or 0
	EnvID, Master   int    // this site's id and the master's (EIDInvalid: none)
	NextFile        uint32 // next LSN used (master) or expected (replica)
	NextOffset      uint32
	WaitingFile     uint32 // replica: LSN awaited after a gap, or 0
	WaitingOffset   uint32
	MasterChanges   uint64
	Elections       uint64
	LogQueued       uint64
	StartupComplete bool
}

// RepStat returns the replication state. See DB_ENV->rep_stat.
func (e *Env) RepStat() (RepStat, error) {
	if e.p == nil {
		return RepStat{}, errInvalid("DB_ENV->rep_stat")
	}
	var s C.dbgo_rep_stat_t
	if rc := C.dbgo_rep_stat(e.p, &s); rc != 0 {
		return RepStat{}, newError("DB_ENV->rep_stat", rc)
	}
	return RepStat{
		Status: uint32(s.status), EnvID: int(s.env_id), Master: int(s.master),
		NextFile: uint32(s.next_file), NextOffset: uint32(s.next_offset),
		WaitingFile: uint32(s.ready_file), WaitingOffset: uint32(s.ready_offset),
		MasterChanges: uint64(s.master_changes), Elections: uint64(s.elections),
		LogQueued: uint64(s.log_queued), StartupComplete: s.startup_complete != 0,
	}, nil
}

// TokenSize is the size of a commit token (DB_TXN_TOKEN_SIZE).
const TokenSize = C.DB_TXN_TOKEN_SIZE

// CommitRep commits like Commit and reports whether
// DB_EVENT_REP_PERM_FAILED fired for this commit: too few replicas
// acknowledged it within the ack timeout, although DB_TXN->commit returned
// 0. With token non-nil it also fills the commit token (see TxnApplied).
// The handle is dead afterwards whatever the result.
func (t *Txn) CommitRep(flags uint32, token *[TokenSize]byte) (permFailed bool, err error) {
	if t.p == nil {
		return false, errInvalid("DB_TXN->commit")
	}
	p := t.p
	t.p = nil
	var pf C.int
	var tok [TokenSize]C.uchar
	var tp *C.uchar
	if token != nil {
		tp = &tok[0]
	}
	if rc := C.dbgo_txn_commit_rep(p, C.u_int32_t(flags), &pf, tp); rc != 0 {
		return pf != 0, newError("DB_TXN->commit", rc)
	}
	if token != nil {
		for i := range tok {
			token[i] = byte(tok[i])
		}
	}
	return pf != 0, nil
}

// TxnApplied waits up to timeout for the transaction of token to be
// applied here: nil once it is, ErrTimeout, or ErrNotFound when a master
// change rolled it back. See DB_ENV->txn_applied.
func (e *Env) TxnApplied(token [TokenSize]byte, timeout time.Duration) error {
	if e.p == nil {
		return errInvalid("DB_ENV->txn_applied")
	}
	var tok [TokenSize]C.uchar
	for i := range tok {
		tok[i] = C.uchar(token[i])
	}
	if rc := C.dbgo_txn_applied(e.p, &tok[0], C.u_int32_t(timeout/time.Microsecond)); rc != 0 {
		return newError("DB_ENV->txn_applied", rc)
	}
	return nil
}

// Verbose message classes for SetVerbose.
const (
	VerbReplication uint32 = C.DB_VERB_REPLICATION // DB_VERB_REPLICATION: every replication message class
)

// SetTCPNoDelay turns on or off, for the whole process, TCP_NODELAY on the
// sockets libdb's repmgr connects and accepts (libdb 5.3 never sets it;
// without it a replicated commit waits ~45 ms for Nagle and delayed ACK).
// It works by interposing connect() and accept() (see repmgrgo.c).
func SetTCPNoDelay(on bool) { C.dbgo_set_nodelay(cbool(on)) }

// RepStartAlone makes an environment opened with InitRep, without the
// Replication Manager, a master or a client of libdb's base replication
// API with a transport that drops every message (DB_ENV->rep_set_transport,
// DB_ENV->rep_start): a role change without a network, for tests of what
// the role change's lockout does to other threads.
func (e *Env) RepStartAlone(master bool) error {
	if e.p == nil {
		return errInvalid("DB_ENV->rep_start")
	}
	if rc := C.dbgo_rep_start_alone(e.p, cbool(master)); rc != 0 {
		return newError("DB_ENV->rep_start", rc)
	}
	return nil
}
