// Package metrics exposes durusbdb's server and storage figures as
// Prometheus metrics (github.com/prometheus/client_golang).
//
// A Metrics holds a private prometheus.Registry (never the global default
// one) with:
//
//   - the server's events, through Metrics' implementation of
//     server.Observer (pass it as server.Config.Observer): connections,
//     requests by command, loads by status, commits by status and refusal
//     rule, commit latency histograms, invalidations, bytes in and out, and
//     errors by kind. Every label value is resolved when the Metrics is
//     created, so an event costs one or two atomic additions: no map
//     lookup and no allocation on the load path;
//   - the engine's statistics (RegisterEngine): objects, garbage queue,
//     objects freed, engine commits, group flushes, checkpoints, unclean
//     shutdown, read once per scrape through engine.DB.Stats;
//   - for a Berkeley DB database (binaries built with -tags bdb), the
//     environment's log, cache and transaction statistics, also per scrape;
//   - the free space of the database's file system and the commit reserve
//     (durusbdb_filesystem_free_bytes, durusbdb_min_free_space_bytes);
//   - for a site of a replication group (SetRole), its role, replication
//     lag, elections and commits the quorum did not acknowledge
//     (durusbdb_repl_*, see NewRoleCollector);
//   - the standard Go runtime and process collectors.
//
// Handler serves the registry in the Prometheus text format; Listen starts
// an HTTP server with /metrics on an address (serve --metrics ADDR), and
// the probes /healthz (Live: a load of oid 0 answers within a second) and
// /readyz (Ready: commits are accepted), configured by SetProbes, and
// /role (RoleHandler: JSON role and master address, 200 only where commits
// are taken, for load balancers' checks). /readyz on a replication site:
// ready as master or as an in-sync replica (it serves loads and forwards
// commits), not while starting or syncing. Requests to the listener are
// not logged.
//
// The metric names, all prefixed durusbdb_ (besides the standard go_ and
// process_ ones), are listed with their types in the comments of New,
// NewEngineCollector, NewRoleCollector and (bdb builds) NewBDBCollector.
package metrics
