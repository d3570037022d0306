package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durusbdb/durusbdb/kv"
)

// roles are the values of durusbdb_repl_role's role label, every one
// exported on each scrape (1 for the current role, 0 for the others).
var roles = [...]string{kv.RoleMaster, kv.RoleReplica, kv.RoleStarting, kv.RoleSyncing, kv.RoleStandalone}

// RoleSource reports a site's replication role: *engine.DB of a
// replicated database. Role must be cheap (it is called per request of
// /role and /readyz and per scrape).
type RoleSource interface {
	Role() kv.RoleInfo
}

// roleHolder boxes a RoleSource for an atomic.Pointer.
type roleHolder struct{ src RoleSource }

// SetRole makes /role, /readyz and the replication metrics follow src, and
// registers the replication collector (NewRoleCollector). Call it once,
// when a replicated database is open. Without it /role answers
// "standalone" once SetProbes gave a database, "starting" before.
func (m *Metrics) SetRole(src RoleSource) error {
	if err := m.reg.Register(NewRoleCollector(src)); err != nil {
		return fmt.Errorf("metrics: registering the replication collector: %w", err)
	}
	m.role.Store(&roleHolder{src})
	return nil
}

// Role returns the site's role as /role reports it: the RoleSource's (see
// SetRole); else "standalone" once the database is open, else "starting".
func (m *Metrics) Role() kv.RoleInfo {
	if h := m.role.Load(); h != nil {
		return h.src.Role()
	}
	if ps := m.probes.Load(); ps != nil && ps.Store != nil {
		return kv.RoleInfo{Role: kv.RoleStandalone}
	}
	return kv.RoleInfo{Role: kv.RoleStarting}
}

// roleReply is the JSON body of /role.
type roleReply struct {
	Role       string  `json:"role"`
	Master     string  `json:"master"`      // the master's Durus address
	MasterRepl string  `json:"master_repl"` // the master's replication address
	LagSeconds float64 `json:"lag_seconds"` // how far this site's applied log is behind the master's
}

// RoleHandler serves /role: JSON {"role", "master", "master_repl",
// "lag_seconds"}, HTTP 200 on a site that takes commits itself (the master
// of a group, or a standalone server), 503 on a replica or a site that is
// starting or syncing: a load balancer's health check on /role sends
// writers to the master. No request is logged.
func (m *Metrics) RoleHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := m.Role()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if ri.Role != kv.RoleMaster && ri.Role != kv.RoleStandalone {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(roleReply{Role: ri.Role, Master: ri.MasterDurusAddr,
			MasterRepl: ri.MasterReplAddr, LagSeconds: ri.Lag.Seconds()})
	})
}

// readyRole is /readyz's role check: a master, a replica (it serves loads
// and forwards commits to the master) and a standalone server are ready;
// a site still starting or syncing with its group is not, nor a master
// whose group has too few sites for a quorum yet (RoleInfo.NoQuorum).
func (m *Metrics) readyRole() error {
	h := m.role.Load()
	if h == nil {
		return nil
	}
	switch ri := h.src.Role(); ri.Role {
	case kv.RoleMaster:
		if ri.NoQuorum != "" {
			return fmt.Errorf("%w: replication role %q: commits refused: %s", ErrProbe, ri.Role, ri.NoQuorum)
		}
		return nil
	case kv.RoleReplica:
		if ri.MasterDurusAddr == "" {
			return fmt.Errorf("%w: replication role %q: no master known (it failed, and no election has been won): commits are refused", ErrProbe, ri.Role)
		}
		return nil
	case kv.RoleStandalone:
		return nil
	default:
		return fmt.Errorf("%w: replication role %q: not in sync with the group yet", ErrProbe, ri.Role)
	}
}

// roleCollector reports a RoleSource, read once per scrape.
type roleCollector struct {
	src                                      RoleSource
	role, lag, permFailed, elections, resets *prometheus.Desc
}

// NewRoleCollector returns the collector of src's replication state:
//
//	durusbdb_repl_role{role}            gauge    1 for the current role (master, replica, starting, syncing, standalone), 0 for the others
//	durusbdb_repl_lag_seconds           gauge    how far this site's applied log is behind the master's (0 on the master)
//	durusbdb_repl_perm_failed_total     counter  commits a quorum did not acknowledge (never answered O; connections closed)
//	durusbdb_repl_elections_total       counter  elections this site took part in
//	durusbdb_repl_resets_total          counter  resets in place (a rollback killed the handles, or the master was demoted): every client closed
func NewRoleCollector(src RoleSource) prometheus.Collector {
	return &roleCollector{
		src:        src,
		role:       desc("repl_role", "Replication role of this site: 1 for the current one, 0 for the others.", "role"),
		lag:        desc("repl_lag_seconds", "How far this site's applied replication log is behind the master's, seconds (0 on the master)."),
		permFailed: desc("repl_perm_failed_total", "Commits a quorum of sites did not acknowledge in time (DB_EVENT_REP_PERM_FAILED): never answered O, their connections closed."),
		elections:  desc("repl_elections_total", "Elections this site took part in."),
		resets:     desc("repl_resets_total", "Resets of this site in place (a rollback killed its handles, or the master was demoted): each closed every client connection."),
	}
}

// Describe implements prometheus.Collector.
func (c *roleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.role
	ch <- c.lag
	ch <- c.permFailed
	ch <- c.elections
	ch <- c.resets
}

// Collect implements prometheus.Collector.
func (c *roleCollector) Collect(ch chan<- prometheus.Metric) {
	ri := c.src.Role()
	for _, r := range roles {
		v := 0.0
		if r == ri.Role {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.role, prometheus.GaugeValue, v, r)
	}
	ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, ri.Lag.Seconds())
	ch <- prometheus.MustNewConstMetric(c.permFailed, prometheus.CounterValue, float64(ri.PermFailed))
	ch <- prometheus.MustNewConstMetric(c.elections, prometheus.CounterValue, float64(ri.Elections))
	ch <- prometheus.MustNewConstMetric(c.resets, prometheus.CounterValue, float64(ri.Resets))
}
