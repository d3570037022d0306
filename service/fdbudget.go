package service

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// fdReserve is the file descriptors kept from Durus connections beyond
// those open once the database is: Berkeley DB opens log files for the
// log cursors of a checkpoint, a backup or replication (one it cannot
// open panics the environment: seen under a flood of connections), backups
// copy files, the prezeroed next log file, control and metrics connections
// (metrics.MaxConns), repmgr's connections, and a refused connection's
// moment between accept and close.
const fdReserve = 128

// fdBudget is how connections fit the process's file-descriptor limit.
type fdBudget struct {
	limit    uint64 // RLIMIT_NOFILE, soft (the Go runtime raised it to the hard limit)
	open     int    // descriptors open now
	reserve  int    // kept for the storage and the other listeners
	perConn  int    // descriptors one Durus connection may take
	maxConns int    // connections that fit
}

// connBudget computes how many Durus connections fit the descriptor
// limit: a LevelDB store may hold a fifth of the limit in table files
// (LevelDB's own bound), and a replica's connection may also hold a
// connection to the master for a forwarded commit.
func connBudget(backend string, replicated bool) (fdBudget, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fdBudget{}, fmt.Errorf("file-descriptor limit: %w", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fdBudget{}, fmt.Errorf("open file descriptors: %w", err)
	}
	b := fdBudget{limit: rl.Cur, open: len(ents), reserve: fdReserve, perConn: 1}
	if rl.Cur > 1<<30 {
		b.limit = 1 << 30 // RLIM_INFINITY
	}
	if backend == "leveldb" {
		b.reserve += int(b.limit / 5)
	}
	if replicated {
		b.perConn = 2
	}
	b.maxConns = max(int(b.limit)-b.open-b.reserve, 0) / b.perConn
	return b, nil
}

// fitConnections returns the connections to serve at most: want, or fewer
// with a warning when the descriptor limit cannot hold want of them beside
// what the storage needs; an error when it holds none.
func fitConnections(log *slog.Logger, want int, backend string, replicated bool) (int, error) {
	b, err := connBudget(backend, replicated)
	if err != nil {
		log.Warn("cannot read the file-descriptor budget; --max-connections as given", "err", err)
		return want, nil
	}
	if b.maxConns < 1 {
		return 0, &ConfigError{fmt.Sprintf("the file-descriptor limit (RLIMIT_NOFILE %d) leaves no room for connections: %d descriptors are open and %d are kept for the storage and the other listeners; raise it (ulimit -n, systemd LimitNOFILE=)", b.limit, b.open, b.reserve)}
	}
	if b.maxConns < want {
		log.Warn("connections limited by the file-descriptor limit: more would leave the storage without descriptors (raise it: ulimit -n, systemd LimitNOFILE=)",
			"max_connections", b.maxConns, "requested", want, "rlimit_nofile", b.limit, "open", b.open, "reserved", b.reserve, "per_connection", b.perConn)
		return b.maxConns, nil
	}
	return want, nil
}
