package service

import (
	"io"
	"log/slog"
	"net"

	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/server"
)

// Config is everything Serve needs. The CLI fills it from `durusbdb
// serve` flags; other callers set the fields they care about.
type Config struct {
	// Dir is the database directory (required).
	Dir string
	// Listen says where clients connect (TCP host and port, or a unix
	// socket). Port 0 picks a free port: see Ready.
	Listen server.ListenConfig
	// Server holds the protocol limits and policies. Serve sets its
	// Logger and, with MetricsAddr, its Observer.
	Server server.Config
	// Engine holds the storage options (Create, ReadOnly, Backend, cache,
	// collector, checkpoints, ...). Serve sets its Logger and OnRemove.
	Engine engine.Options
	// Log says where and how the server logs.
	Log LogConfig
	// MetricsAddr, if set, is the host:port of the HTTP listener of
	// /metrics, /healthz and /readyz.
	MetricsAddr string
	// CPUProfile, if set, is a file that receives a pprof CPU profile of
	// the whole run.
	CPUProfile string
	// ParentPID, if positive, shuts the server down cleanly once this
	// process is no longer the parent (the Python shim's process is gone).
	ParentPID int
	// Version is the release reported in the log and the durusbdb_info
	// metric.
	Version string
	// Control, if set, makes the handler of the control socket in Dir
	// (the tools on a live database) from the open database and a count
	// of the connections served now. Nil: no control socket.
	Control func(db *engine.DB, conns func() int) control.Handler
	// Ready, if set, is called with the listening address once the
	// database is open, just before serving starts.
	Ready func(addr net.Addr)
	// ForceExit, if set, is called when a second SIGINT/SIGTERM arrives
	// during shutdown, or when shutdown overruns ShutdownTimeout; the CLI
	// exits the process there. Nil: Serve waits as long as shutdown takes.
	ForceExit func(reason string)
	// Replication, if set, serves Dir as a site of a Berkeley DB
	// replication group (see docs/REPLICATION.md). A LevelDB directory is
	// refused, and so is a group of fewer than three sites unless
	// AllowTwoSites. DurusAddr defaults to the client listener's address.
	Replication *kv.Replication
	// RoleHook is the command run on every replication role change
	// (serve --on-role-change); only with Replication.
	RoleHook RoleHookConfig
}

// LogConfig says where and how Serve logs.
type LogConfig struct {
	// File, if set, is appended to instead of Stderr; SIGHUP reopens it
	// (logrotate).
	File string
	// Format is "text" (the default when empty) or "json".
	Format string
	// Level is the lowest level logged.
	Level slog.Level
	// Stderr receives the log when File is empty (nil: discarded).
	Stderr io.Writer
}

// ConfigError is a Config that Serve refuses before doing anything: a bad
// value of a field the caller set (the CLI exits 2, bad usage).
type ConfigError struct {
	// Msg says which setting is wrong and why.
	Msg string
}

// Error returns Msg.
func (e *ConfigError) Error() string { return e.Msg }

// validate checks the fields Serve interprets itself; the engine and the
// server check their own options.
func (c *Config) validate() error {
	switch {
	case c.Dir == "":
		return &ConfigError{"--dir is required"}
	case c.Listen.Port < 0 || c.Listen.Port > 65535:
		return &ConfigError{"--port out of range (0 to 65535)"}
	case c.Log.Format != "" && c.Log.Format != "text" && c.Log.Format != "json":
		return &ConfigError{"--log-format must be text or json, not " + c.Log.Format}
	case c.Engine.Access != "" && c.Engine.Access != "btree" && c.Engine.Access != "hash":
		return &ConfigError{"--access must be btree or hash, not " + c.Engine.Access}
	}
	return checkReplication(c)
}
