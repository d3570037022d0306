// Package service runs a durusbdb server: Serve opens a database directory
// with package engine, serves it to Durus clients with package server, and
// adds what `durusbdb serve` offers around them (log file reopened on
// SIGHUP, Prometheus metrics and health probes, the control socket through
// which the tools run on a live database, a CPU profile, a parent-process
// watch, and for a replication site the role's metrics and the
// --on-role-change command, run serialised and bounded per role change). The CLI, the benchmark suite's profiling server and the tests
// all call the same Serve in process, so that they cannot drift apart.
//
// Serve returns when its context is cancelled (a clean shutdown), when a
// client stops the server with Q, or when the storage fails (an error: the
// supervisor should restart the server so that recovery runs).
//
// Config.Replication serves the directory as a site of a Berkeley DB
// replication group (docs/REPLICATION.md); what cannot be replicated (a
// LevelDB directory, a group of fewer than three sites unless allowed) is
// refused before anything is opened.
package service
