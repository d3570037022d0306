package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"time"
)

// Defaults of PROTOCOL.md §9.
const (
	// DefaultHost and DefaultPort are the address of a server started
	// without options (as `durus -s`).
	DefaultHost = "127.0.0.1"
	// DefaultPort is Durus's default TCP port.
	DefaultPort = 2972
	// DefaultMaxBulk is the largest B count served (--max-bulk).
	DefaultMaxBulk = 1 << 20
	// DefaultMaxCommit is the largest commit len accepted (--max-commit).
	DefaultMaxCommit = 1 << 30
	// MaxCommitLimit is the protocol's own bound on a commit len.
	MaxCommitLimit = 1<<32 - 1
	// DefaultMaxInvalid caps a connection's invalid set in oids (I7,
	// --max-invalid): the list a client is sent at its next S or phase 1,
	// int4 k and 8·k bytes, 32 MiB (the stock client holds it as k Python
	// strings, about 200 MB). It bounds no server memory (the sets are
	// runs: MaxInvalidRuns, MaxInvalidMemory). A commit of more records is
	// refused with E (rule 1), so one commit cannot put another
	// connection's set over it alone.
	DefaultMaxInvalid = 4_194_304
	// MaxInvalidLimit is the protocol's own bound on an invalid list: its
	// count is an int4.
	MaxInvalidLimit = 1<<32 - 1
	// DefaultMaxInvalidRuns caps the runs of a connection's invalid set
	// (I7): 16 bytes each, so 4 MiB per connection. A set of scattered
	// oids costs a run per oid; the oid cap alone would let one
	// connection hold 64 MiB. A commit of more scattered oids than this
	// closes every other connection open at the time.
	DefaultMaxInvalidRuns = 262_144
	// DefaultMaxUnused caps a connection's unused set.
	DefaultMaxUnused = 16_777_216
	// DefaultRequestTimeout bounds each read inside a request.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds each write of a reply.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxConnections is the number of connections served at once.
	DefaultMaxConnections = 4096
	// DefaultInflightWait is how long a request waits for room in the
	// budget of bytes in flight before it is refused.
	DefaultInflightWait = 5 * time.Second
	// DefaultMinWriteRate is the slowest a large load reply may be read:
	// it must be written within WriteTimeout plus its size at this rate.
	DefaultMinWriteRate = 256 << 10
	// DefaultMinReadRate is the slowest a commit's data may arrive: all of
	// it must be read within RequestTimeout plus its length at this rate.
	DefaultMinReadRate = 256 << 10
	// DefaultShutdownTimeout is how long shutdown waits for connections
	// before closing them by force; the storage is closed afterwards, all
	// within the 10 s of §4.3.
	DefaultShutdownTimeout = 8 * time.Second
)

// Config configures a Server. Zero values mean the defaults above.
type Config struct {
	// MaxBulk is the largest B count; above it the connection is closed.
	MaxBulk int
	// MaxCommit is the largest commit len; above it the data is discarded
	// and answered E (rule 1). At most MaxCommitLimit.
	MaxCommit int64
	// MaxInvalid caps each connection's invalid set in oids: a connection
	// whose set would go over it is closed (I7), and a commit of more
	// records is refused with E (rule 1 of §5.5), since it would close
	// every other connection. At most MaxInvalidLimit.
	MaxInvalid int
	// MaxInvalidRuns caps the runs (16 bytes each) of each connection's
	// invalid set (I7).
	MaxInvalidRuns int
	// MaxInvalidMemory caps the invalid sets of all connections together,
	// in bytes at 16 a run (runBytes): a connection whose set would take
	// the total over it is closed (I7). Default: MachineInflight().
	MaxInvalidMemory int64
	// MaxUnused caps each connection's unused set.
	MaxUnused int
	// MaxUnusedMemory caps the unused sets of all connections together
	// (one list of runs, ownedRunBytes a run): an allocation that would go
	// over closes its connection, and a commit that fragments the list
	// over it is answered, then its connection closed. Default:
	// MachineInflight().
	MaxUnusedMemory int64
	// RequestTimeout bounds each read once a request has started (and the
	// wait for commit phase 2).
	RequestTimeout time.Duration
	// WriteTimeout bounds each write of a reply.
	WriteTimeout time.Duration
	// IdleTimeout, if positive, closes connections idle between requests
	// for that long. Zero: never (the default, as Durus).
	IdleTimeout time.Duration
	// CommitLease is the commit token's lease (§5.4); 0 means 5 s.
	CommitLease time.Duration
	// MaxConnections is the number of connections served at once; further
	// ones are accepted and closed at once.
	MaxConnections int
	// ShutdownTimeout bounds the wait for connections at shutdown.
	ShutdownTimeout time.Duration
	// MaxInflight is the budget of bytes in flight (--max-inflight): commit
	// data being read and load replies larger than the write buffer being
	// written, a record shared by several replies counted once. A request
	// that does not fit waits up to InflightWait, then is refused with E
	// (a commit's data is discarded first). 0 means MachineInflight().
	MaxInflight int64
	// InflightWait bounds the wait for room in the budget; 0 means
	// DefaultInflightWait.
	InflightWait time.Duration
	// MinWriteRate (bytes/s) bounds the time a load reply larger than the
	// write buffer may take: WriteTimeout plus its size at this rate, after
	// which the connection is closed (a client reading a little now and
	// then cannot hold a record forever). 0 means DefaultMinWriteRate;
	// negative: no bound but WriteTimeout per write.
	MinWriteRate int64
	// MinReadRate (bytes/s) bounds the time a commit's data (phase 2) may
	// take to arrive: RequestTimeout plus its declared length at this rate
	// from the moment the length is read, after which the connection is
	// closed (a client sending a byte now and then cannot hold its charge
	// of the budget of bytes in flight, nor the token's queue, forever).
	// 0 means DefaultMinReadRate; negative: no bound but RequestTimeout
	// per read.
	MinReadRate int64
	// NoQuit makes the server ignore Q (log it and close that connection);
	// it overrides AllowQuit (as QuitNone).
	NoQuit bool
	// AllowQuit says which peers may stop the server with Q; a refused Q
	// is logged and closes that connection. The zero value is QuitLocal.
	AllowQuit QuitPolicy
	// isLocal replaces isLocalPeer for QuitLocal (tests: every peer they
	// can make is on loopback).
	isLocal func(local, remote net.Addr) bool
	// MaxConnsPerAddress, if positive, is the number of TCP connections
	// served at once from one IP address; further ones are accepted and
	// closed at once. Zero: no limit (the default).
	MaxConnsPerAddress int
	// TLS, if set, makes every accepted connection speak TLS with this
	// configuration (see TLSConfig); the handshake must complete within
	// RequestTimeout.
	TLS *tls.Config
	// GCBytes, if positive, starts a full collection once that many
	// committed bytes (len + 8 per commit) have accumulated (G8).
	GCBytes int64
	// VerifyRefs, if set, checks each committed record's pickled references
	// against its refs field (rule 8 of §5.5, --verify-refs); an error
	// refuses the commit with E.
	VerifyRefs func(oid uint64, rec []byte) error
	// Logger receives one line per connection open and close and one per
	// error; nil means slog.Default().
	Logger *slog.Logger
	// Observer, if set, receives connection, request, load, commit,
	// traffic and error events (metrics). Nil: none, at no cost.
	Observer Observer
}

func (c Config) withDefaults() Config {
	if c.MaxBulk <= 0 {
		c.MaxBulk = DefaultMaxBulk
	}
	if c.MaxCommit <= 0 {
		c.MaxCommit = DefaultMaxCommit
	}
	if c.MaxCommit > MaxCommitLimit {
		c.MaxCommit = MaxCommitLimit
	}
	if c.MaxInvalid <= 0 {
		c.MaxInvalid = DefaultMaxInvalid
	}
	if int64(c.MaxInvalid) > MaxInvalidLimit {
		c.MaxInvalid = MaxInvalidLimit
	}
	if c.MaxInvalidRuns <= 0 {
		c.MaxInvalidRuns = DefaultMaxInvalidRuns
	}
	if c.MaxInvalidMemory <= 0 {
		c.MaxInvalidMemory = MachineInflight()
	}
	if c.MaxUnusedMemory <= 0 {
		c.MaxUnusedMemory = MachineInflight()
	}
	if c.MaxUnused <= 0 {
		c.MaxUnused = DefaultMaxUnused
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = MachineInflight()
	}
	if c.InflightWait <= 0 {
		c.InflightWait = DefaultInflightWait
	}
	if c.MinWriteRate == 0 {
		c.MinWriteRate = DefaultMinWriteRate
	}
	if c.MinReadRate == 0 {
		c.MinReadRate = DefaultMinReadRate
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}
