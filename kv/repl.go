package kv

import "time"

// Replication configures a Berkeley DB replication group site (serve
// --repl-*): where this site listens, which members it knows, and the
// election and acknowledgement policy. Nil in a config means standalone.
type Replication struct {
	Listen                       string
	Peers                        []string
	Init                         bool
	Priority                     int
	AckTimeout, HeartbeatMonitor time.Duration
	AllowTwoSites                bool
	DurusAddr                    string
}

// RoleInfo is a site's replication role as operators see it (GET /role,
// the role hook, the role metrics).
type RoleInfo struct {
	Role                            string /* master|replica|starting|syncing|standalone */
	MasterDurusAddr, MasterReplAddr string
	Lag                             time.Duration
	Elections, PermFailed           uint64
}
