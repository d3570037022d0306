package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/internal/netaccept"
)

// ErrServerClosed is returned by Serve when it is called on a server that
// has already shut down.
var ErrServerClosed = errors.New("server: closed")

// Server serves one Storage to Durus clients. Create it with New, run it with
// Serve (Listen makes its listener); it stops on Q (as AllowQuit permits), on
// Close, or when Serve's context ends.
type Server struct {
	cfg     Config
	st      Storage
	log     *slog.Logger
	connLog *slog.Logger // log's handler within the connections' line budget (loglimit.go)

	// commitPath is the server half of the commit pipeline (pipeline.go):
	// the commit token, the allocation lock and unused sets, the root
	// rules and the invalidation of other connections.
	commitPath

	// soft ends at the start of shutdown (token waits are abandoned);
	// hard ends when the shutdown timeout expires (durability waits too).
	soft, hard           context.Context
	softCancel, hardStop context.CancelFunc
	quit                 chan struct{} // closed by Close or Q
	quitOnce             sync.Once
	served               atomic.Bool

	connSet                // the open connections
	wg      sync.WaitGroup // connection goroutines

	inflight *inflight // the budget of bytes in flight (budget.go)

	fwd forwardPool // connections to the master, on a replica (forward.go)

}

// New returns a server for st. It does not listen yet.
func New(cfg Config, st Storage) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:     cfg,
		st:      st,
		log:     cfg.Logger,
		quit:    make(chan struct{}),
		connSet: connSet{conns: make(map[*conn]struct{})},

		inflight: newInflight(cfg.MaxInflight, keptBy(st)),
	}
	s.connLog = slog.New(&budgetHandler{Handler: cfg.Logger.Handler(), b: &lineBudget{}, summary: cfg.Logger})
	s.commitPath.init(&s.cfg, st, &s.connSet, s.allocOIDs)
	s.soft, s.softCancel = context.WithCancel(context.Background())
	s.hard, s.hardStop = context.WithCancel(context.Background())
	return s
}

// Close starts a graceful shutdown, as Q does; Serve then returns.
func (s *Server) Close() { s.quitOnce.Do(func() { close(s.quit) }) }

// Done is closed once shutdown has started.
func (s *Server) Done() <-chan struct{} { return s.quit }

// NumConns returns the number of open connections.
func (s *Server) NumConns() int { return s.connSet.count() }

// count returns the number of open connections.
func (s *connSet) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Serve accepts connections on ln until ctx ends, Close is called or a
// client sends Q. It then closes ln (removing a unix socket file created by
// Listen), lets commits whose data has arrived finish, closes every
// connection and returns nil, within ShutdownTimeout plus about a second.
// It does not close the Storage. Serve may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		ln.Close()
		return ErrServerClosed
	}
	ln = s.wrapListener(ln)
	s.log.Info("serving", "address", addrString(ln.Addr()), "readonly", s.st.ReadOnly(), "tls", s.cfg.TLS != nil)
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- s.acceptLoop(ln) }()
	if f, ok := s.st.(Forwarder); ok {
		stopWatch, watchDone := make(chan struct{}), make(chan struct{})
		go func() { defer close(watchDone); s.watchMaster(f, stopWatch) }()
		defer func() { close(stopWatch); <-watchDone }()
	}

	var acceptErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down", "reason", context.Cause(ctx))
	case <-s.quit:
		s.log.Info("shutting down", "reason", "quit")
	case acceptErr = <-acceptDone:
		s.log.Error("accept failed; shutting down", "err", acceptErr)
		s.observeError(ErrAccept)
	}
	s.Close()
	ln.Close()
	if acceptErr == nil {
		<-acceptDone
	}
	s.shutdownConns()
	s.fwd.close()
	s.log.Info("stopped")
	return acceptErr
}

// acceptLoop accepts until ln is closed. EMFILE and friends (a flood that
// used up the descriptors) are waited out, not fatal.
func (s *Server) acceptLoop(ln net.Listener) error {
	return netaccept.Loop(ln, s.quit, s.startConn, func(err error, delay time.Duration) {
		s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
		s.observeError(ErrAccept)
	})
}

// observeError reports an error to the observer, if any.
func (s *Server) observeError(kind ErrorKind) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Error(kind)
	}
}

// startConn registers nc and starts its goroutine, or closes it at once
// when the server is full or stopping; on a replica, after one read of the
// change follower (below).
func (s *Server) startConn(nc net.Conn) {
	f, _, replica := s.forwarder()
	if !replica {
		s.registerConn(nc)
		return
	}
	// On a replica, the change entries applied here before the
	// connection arrived are reported to the other clients first, and
	// only then is it registered: its loads see those commits, so their
	// invalidations would be spurious (its first load of such an oid
	// answered I). Entries applied later reach it: registered before
	// any load, it misses none that could make its view stale. The wait
	// is one read of the change table (bounded; beyond it the
	// connection is registered anyway, and an invalidation may then be
	// spurious, never missing).
	mark := f.FollowerMark()
	s.registerAfter(nc, func() bool {
		f.SyncFollowerFrom(s.soft, mark, syncFollowerTimeout)
		return true
	})
}

// registerAfter registers nc (registerConn) on a goroutine of its own once
// wait returns true, or closes it when wait returns false; a server that
// is quitting closes it at once (no goroutine is counted in wg then).
//
// A waiting connection counts toward MaxConnections: beyond it, it is
// refused at once.
func (s *Server) registerAfter(nc net.Conn, wait func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.quit:
		nc.Close()
		return
	default:
	}
	if s.fullLocked() {
		nc.Close()
		s.refuseFull(nc)
		return
	}
	s.pending++
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ok := wait()
		s.mu.Lock()
		s.pending--
		s.mu.Unlock()
		if ok {
			s.registerConn(nc)
		} else {
			nc.Close()
		}
	}()
}

// fullLocked reports whether MaxConnections are open or waiting (s.mu
// held).
func (s *Server) fullLocked() bool { return len(s.conns)+s.pending >= s.cfg.MaxConnections }

// refuseFull reports a connection closed because the server is full.
func (s *Server) refuseFull(nc net.Conn) {
	s.connLog.Warn("connection refused: too many connections", "remote", addrString(nc.RemoteAddr()), "max", s.cfg.MaxConnections)
	s.observeError(ErrMaxConnections)
}

// registerConn registers nc and starts its goroutine, or closes it at once
// when the server is shutting down or full (C5).
func (s *Server) registerConn(nc net.Conn) {
	remote := addrString(nc.RemoteAddr())
	s.mu.Lock()
	select {
	case <-s.quit:
		s.mu.Unlock()
		nc.Close()
		s.log.Info("connection refused: shutting down", "remote", remote)
		return
	default:
	}
	if gate := s.held; gate != nil { // a reset in place (HoldConns)
		s.mu.Unlock()
		s.registerAfter(nc, func() bool {
			select {
			case <-gate:
				return true
			case <-s.soft.Done():
				return false
			}
		})
		return
	}
	if s.fullLocked() {
		s.mu.Unlock()
		nc.Close()
		s.refuseFull(nc)
		return
	}
	s.nextID++
	c := newConn(s, nc, s.nextID, remote)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	if tc, ok := baseConn(nc).(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
	}
	go c.serve()
}

// dropConn unregisters c and releases its unused oids; the connection's
// goroutine then releases the token and calls wg.Done.
func (s *Server) dropConn(c *conn) {
	c.dropInvalid() // first: a closed connection counts no invalid runs once NumConns no longer counts it
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.releaseUnused(c)
}

// shutdownConns stops every connection: reads fail at once, so a connection
// idle or in the middle of receiving a request ends; one applying a commit
// whose data has arrived finishes it and sends its reply first. After
// ShutdownTimeout the rest are closed by force.
func (s *Server) shutdownConns() {
	s.softCancel()
	s.mu.Lock()
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(s.cfg.ShutdownTimeout):
	}
	s.hardStop()
	s.mu.Lock()
	n := len(s.conns)
	for c := range s.conns {
		c.log.Warn("shutdown timeout: closing connection by force")
		c.nc.Close()
	}
	s.mu.Unlock()
	s.log.Warn("shutdown timeout: closed connections by force", "connections", n)
	select {
	case <-done:
	case <-time.After(time.Second):
		s.mu.Lock()
		remotes := make([]string, 0, len(s.conns))
		for c := range s.conns {
			remotes = append(remotes, c.remote)
		}
		s.mu.Unlock()
		s.log.Error("connections still running after forced close", "remotes", remotes)
	}
}

// HoldConns closes every open Durus connection at once, noting reason in
// each connection's log, and holds the connections accepted from then on
// unregistered (no request read) until release is called; it returns how
// many it closed. A replication site reset in place (engine
// Options.OnReset) calls it: its clients' caches may hold records a
// rollback removed, and a client that connected during the reset could
// load such a record from the old handles or the record cache, or miss
// the invalidation of a change applied before the change follower starts
// again. A stock client that reconnects starts with an empty cache.
// release may be called more than once.
func (s *Server) HoldConns(reason string) (closed int, release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.held = gate
	for c := range s.conns {
		c.kill(reason)
	}
	closed = len(s.conns)
	s.mu.Unlock()
	return closed, sync.OnceFunc(func() {
		s.mu.Lock()
		if s.held == gate {
			s.held = nil
		}
		s.mu.Unlock()
		close(gate)
	})
}

// InvalidateRemoved adds oids removed by a collection to every open
// connection's invalid set (I2, G3), except a set they would take over its
// cap (I7): that connection is not told of them and stays open. Wire it to
// engine Options.OnRemove.
func (s *Server) InvalidateRemoved(oids []uint64) {
	s.invalidateOIDs(oids, true)
}

// InvalidateReplicated adds the oids of a commit applied by replication
// (engine Options.OnReplicated, on a replica) to every open connection's
// invalid set, as a commit's own (I1): a connection it would put over its
// cap is closed (I7).
func (s *Server) InvalidateReplicated(oids []uint64) {
	s.invalidateOIDs(oids, false)
}

// invalidateOIDs sorts a copy of oids and tells every open connection of
// them (commitPath.invalidate).
func (s *Server) invalidateOIDs(oids []uint64, removed bool) {
	if len(oids) == 0 {
		return
	}
	sorted := slices.Clone(oids)
	slices.Sort(sorted)
	s.invalidate(runsOf(sorted), nil, removed)
}

// connSet is the open connections: registered by startConn, unregistered
// by dropConn, stopped by shutdownConns, and the targets of the
// commitPath's invalidation fan-out.
type connSet struct {
	mu      sync.Mutex // guards conns, pending, nextID and held
	conns   map[*conn]struct{}
	pending int // accepted, waiting in registerAfter: they count toward MaxConnections
	nextID  uint64
	held    chan struct{} // non-nil while HoldConns holds new connections; closed at release
}

// addrString formats a listener or peer address for logs; abstract unix
// names are shown with '@' (D14).
func addrString(a net.Addr) string {
	if a == nil {
		return "?"
	}
	str := a.String()
	if a.Network() == "unix" || a.Network() == "unixpacket" {
		b := []byte(str)
		for i, ch := range b {
			if ch == 0 {
				b[i] = '@'
			}
		}
		str = string(b)
		if str == "" || str == "@" {
			str = "unix"
		}
	}
	return str
}
