package service

import (
	"fmt"

	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/kv"
)

// checkReplication refuses what a replication group cannot be built on,
// before the directory is opened: a LevelDB directory (or an explicit
// leveldb backend), a site without a replication address, and a group of
// fewer than three electable sites unless AllowTwoSites.
func checkReplication(c *Config) error {
	r := c.Replication
	if r == nil {
		return nil
	}
	if r.Listen == "" {
		return &ConfigError{"replication needs this site's replication address (--repl-listen host:port)"}
	}
	if c.Engine.ReadOnly {
		return &ConfigError{"replication and --readonly cannot be combined: a replica is read-only by itself"}
	}
	leveldb := c.Engine.Backend == "leveldb"
	if l, err := dbdir.Detect(c.Dir); err == nil && l.Kind == dbdir.LevelDB {
		leveldb = true
	}
	if leveldb {
		return &ConfigError{fmt.Sprintf("replication needs a Berkeley DB directory; %s is LevelDB: copy it with `durusbdb copy --backend bdb %s NEWDIR` into a bdb directory and serve that", c.Dir, c.Dir)}
	}
	if len(r.Peers)+1 < 3 && !r.AllowTwoSites {
		return &ConfigError{fmt.Sprintf("a replication group of %d site(s) has no safe failover; name at least two peers (three sites) or accept the risk explicitly (--repl-allow-two-sites)", len(r.Peers)+1)}
	}
	return nil
}

// replicationOf returns the engine's replication options: cfg.Replication
// with DurusAddr defaulted to the client listener's address.
func replicationOf(r *kv.Replication, listenAddr string) *kv.Replication {
	if r == nil {
		return nil
	}
	cp := *r
	cp.Peers = append([]string(nil), r.Peers...)
	if cp.DurusAddr == "" {
		cp.DurusAddr = listenAddr
	}
	return &cp
}
