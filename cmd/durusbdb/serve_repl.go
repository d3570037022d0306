package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/service"
	"github.com/spf13/pflag"
)

// replFlags are serve's replication flags (docs/REPLICATION.md): a site of
// a Berkeley DB Replication Manager group, and the role-change hook.
type replFlags struct {
	listen, durusAddr, onRoleChange string
	peers                           []string
	init, allowTwoSites, flushAcks  bool
	priority                        int
	ackTimeout, heartbeat, hookWait time.Duration
}

// Replication flag defaults (docs/REPLICATION.md, "Setting up a group").
const (
	defaultReplPriority   = 100
	defaultReplAckTimeout = time.Second
	defaultReplHeartbeat  = time.Second
)

// register defines the replication flags on fs.
func (f *replFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.listen, "repl-listen", "", "join a replication group (Berkeley DB only): this site's replication address HOST:PORT, on a private network (no authentication, sent in clear)")
	fs.StringArrayVar(&f.peers, "repl-peer", nil, "replication address HOST:PORT of another site of the group (repeat for each; needs --repl-listen)")
	fs.BoolVar(&f.init, "repl-init", false, "create the replication group: on one site, for the group's very first start only")
	fs.IntVar(&f.priority, "repl-priority", defaultReplPriority, "election priority of this site; 0: never master (it neither wins elections nor acknowledges commits)")
	fs.DurationVar(&f.ackTimeout, "repl-ack-timeout", defaultReplAckTimeout, "how long a commit waits for a quorum of sites to have it on disk before it fails without an answer")
	fs.DurationVar(&f.heartbeat, "repl-heartbeat", defaultReplHeartbeat, "how long a replica waits for the master's heartbeat before calling an election (negative: off; a hung master is then never replaced)")
	fs.BoolVar(&f.allowTwoSites, "repl-allow-two-sites", false, "accept a group of fewer than 3 electable sites (risk: no failover, or two masters after a partition)")
	fs.BoolVar(&f.flushAcks, "repl-flush-during-acks", true, "on a master, flush the log while a commit waits for the replicas' acknowledgement instead of after it (false: for sites that share one disk, where the fsyncs would meet)")
	fs.StringVar(&f.durusAddr, "repl-durus-addr", "", "Durus address HOST:PORT that clients use to reach this site, reported by the others' /role when it is master (default: the address the Durus listener is bound to; set it when listening on 0.0.0.0)")
	fs.StringVar(&f.onRoleChange, "on-role-change", "", "run this command (sh -c) at start and on every replication role change, with DURUSBDB_ROLE and DURUSBDB_MASTER set (e.g. to move a floating IP)")
	fs.DurationVar(&f.hookWait, "on-role-change-timeout", service.DefaultRoleHookTimeout, "kill an --on-role-change command that runs longer than this")
}

// replication maps the flags to a kv.Replication (nil without
// --repl-listen), refusing bad combinations with usage errors naming the
// flag. service.Serve refuses a LevelDB directory itself, and defaults
// DurusAddr to the client listener's address.
func (f *replFlags) replication(set map[string]bool) (*kv.Replication, error) {
	if f.listen == "" {
		for _, name := range []string{"repl-peer", "repl-init", "repl-priority", "repl-ack-timeout", "repl-heartbeat", "repl-allow-two-sites", "repl-flush-during-acks", "repl-durus-addr", "on-role-change", "on-role-change-timeout"} {
			if set[name] {
				return nil, &usageError{fmt.Sprintf("--%s needs --repl-listen (this site's replication address)", name)}
			}
		}
		return nil, nil
	}
	if err := checkHostPort("--repl-listen", f.listen); err != nil {
		return nil, err
	}
	seen := map[string]bool{f.listen: true}
	var peers []string
	for _, p := range f.peers {
		if err := checkHostPort("--repl-peer", p); err != nil {
			return nil, err
		}
		if p == f.listen {
			return nil, &usageError{fmt.Sprintf("--repl-peer %s is this site's own --repl-listen", p)}
		}
		if !seen[p] {
			seen[p] = true
			peers = append(peers, p)
		}
	}
	if f.priority < 0 {
		return nil, &usageError{fmt.Sprintf("--repl-priority must not be negative, not %d", f.priority)}
	}
	if f.ackTimeout <= 0 {
		return nil, &usageError{"--repl-ack-timeout must be positive"}
	}
	if f.heartbeat == 0 {
		return nil, &usageError{"--repl-heartbeat must not be 0 (negative turns heartbeats off)"}
	}
	electable := len(peers)
	if f.priority > 0 {
		electable++
	}
	if electable < 3 && !f.allowTwoSites {
		return nil, &usageError{fmt.Sprintf("a replication group needs 3 or more electable sites, but --repl-listen and --repl-peer name %d (name every other site with --repl-peer; --repl-allow-two-sites accepts the risk: no failover, or two masters after a partition)", electable)}
	}
	if f.durusAddr != "" {
		if err := checkHostPort("--repl-durus-addr", f.durusAddr); err != nil {
			return nil, err
		}
	}
	prio := f.priority
	if prio == 0 {
		prio = -1 // kv.Replication: negative is never master (0 is the default)
	}
	return &kv.Replication{Listen: f.listen, Peers: peers, Init: f.init, Priority: prio,
		AckTimeout: f.ackTimeout, HeartbeatMonitor: f.heartbeat, AllowTwoSites: f.allowTwoSites, SerialFlush: !f.flushAcks, DurusAddr: f.durusAddr}, nil
}

// roleHook maps --on-role-change and its timeout.
func (f *replFlags) roleHook() (service.RoleHookConfig, error) {
	if f.hookWait <= 0 {
		return service.RoleHookConfig{}, &usageError{"--on-role-change-timeout must be positive"}
	}
	return service.RoleHookConfig{Command: f.onRoleChange, Timeout: f.hookWait}, nil
}

// checkHostPort refuses a value of flag that is not HOST:PORT with a port
// from 1 to 65535.
func checkHostPort(flag, v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return &usageError{fmt.Sprintf("%s %q: want HOST:PORT", flag, v)}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return &usageError{fmt.Sprintf("%s %q: port must be 1 to 65535", flag, v)}
	}
	return nil
}

// replListenError names --repl-listen in err, serve's error, when the
// replicated open failed because libdb's Replication Manager could not
// bind the site's replication address (repl; nil without replication):
// libdb's message names neither the flag nor the address. The errors of
// the Go listeners (the Durus and metrics addresses, *net.OpError), which
// name their own, are left as they are.
func replListenError(repl *kv.Replication, err error) error {
	if repl == nil || err == nil {
		return err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return err
	}
	_, port, _ := net.SplitHostPort(repl.Listen)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("--repl-listen %s: the address is already in use: another process listens there (see which: ss -ltnp 'sport = :%s'); stop it, or pick another port for --repl-listen (a new site: any free port, named in the other sites' --repl-peer; a site already in the group is known there by this address: free it instead): %w",
			repl.Listen, port, err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("--repl-listen %s: not an address of this host (see its addresses: ip -brief address): name one of this host's addresses: %w", repl.Listen, err)
	}
	return err
}
