package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// QuitPolicy says which connections may stop the server with Q
// (--allow-quit). Durus has no authentication, so the policy is decided by
// where a peer connects from.
type QuitPolicy int

// Quit policies. The zero value is QuitLocal, the default.
const (
	// QuitLocal accepts Q only from peers on the unix socket and from
	// loopback TCP addresses (127.0.0.0/8, ::1).
	QuitLocal QuitPolicy = iota
	// QuitAny accepts Q from any peer, as Durus 4.3 does.
	QuitAny
	// QuitNone refuses Q from every peer (as --no-quit).
	QuitNone
)

// ErrBadQuitPolicy is returned by ParseQuitPolicy for an unknown name.
var ErrBadQuitPolicy = errors.New("server: --allow-quit must be any, local or none")

// String returns the policy's --allow-quit name.
func (p QuitPolicy) String() string {
	switch p {
	case QuitLocal:
		return "local"
	case QuitAny:
		return "any"
	case QuitNone:
		return "none"
	}
	return fmt.Sprintf("QuitPolicy(%d)", int(p))
}

// ParseQuitPolicy parses an --allow-quit value: any, local or none.
func ParseQuitPolicy(s string) (QuitPolicy, error) {
	for _, p := range []QuitPolicy{QuitLocal, QuitAny, QuitNone} {
		if p.String() == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w, not %q", ErrBadQuitPolicy, s)
}

// isLocalPeer reports whether a connection with these addresses comes from
// this machine: a unix socket, or a TCP peer on a loopback address. (Any
// local user can reach a loopback port; see docs/SECURITY.md.)
func isLocalPeer(local, remote net.Addr) bool {
	if local != nil && (local.Network() == "unix" || local.Network() == "unixpacket") {
		return true
	}
	switch a := remote.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}

// quitAllowed applies the quit policy to a Q from c, logging a refusal.
func (c *conn) quitAllowed() bool {
	cfg := &c.s.cfg
	policy := cfg.AllowQuit
	if cfg.NoQuit {
		policy = QuitNone
	}
	switch policy {
	case QuitAny:
		return true
	case QuitNone:
		c.log.Warn("Q refused (--allow-quit none); closing connection")
		c.observeError(ErrProtocol)
		return false
	}
	local := isLocalPeer
	if cfg.isLocal != nil {
		local = cfg.isLocal
	}
	if local(c.nc.LocalAddr(), c.nc.RemoteAddr()) {
		return true
	}
	c.log.Warn("Q refused: peer is not local (--allow-quit local); closing connection")
	c.observeError(ErrProtocol)
	return false
}

// wrapListener prepares ln for Serve: the abstract socket name for logs,
// the per-address connection limit, then TLS.
func (s *Server) wrapListener(ln net.Listener) net.Listener {
	if name, ok := abstractName(ln); ok {
		ln = &namedListener{Listener: ln, addr: &net.UnixAddr{Name: name, Net: "unix"}}
	}
	if s.cfg.MaxConnsPerAddress > 0 {
		ln = &limitListener{Listener: ln, s: s, max: s.cfg.MaxConnsPerAddress, open: map[string]int{}}
	}
	if s.cfg.TLS != nil {
		ln = newTLSListener(ln, s.cfg.TLS)
	}
	return ln
}

// namedListener reports addr as its address: the whole abstract socket
// name, which the net package cuts at the first NUL after the leading one.
type namedListener struct {
	net.Listener
	addr net.Addr
}

func (l *namedListener) Addr() net.Addr { return l.addr }

// limitListener refuses (accepts and closes at once) a TCP connection when
// max connections from the same IP address are open. Unix socket peers are
// not counted.
type limitListener struct {
	net.Listener
	s   *Server
	max int

	mu   sync.Mutex
	open map[string]int // open connections per IP address
}

// Accept returns the next connection within the limit.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ta, ok := nc.RemoteAddr().(*net.TCPAddr)
		if !ok {
			return nc, nil
		}
		key := ta.IP.String()
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			nc.Close()
			l.s.connLog.Warn("connection refused: too many connections from this address",
				"remote", addrString(ta), "max_per_address", l.max)
			l.s.observeError(ErrMaxConnections)
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &countedConn{Conn: nc, l: l, key: key}, nil
	}
}

// release forgets one connection from key.
func (l *limitListener) release(key string) {
	l.mu.Lock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
	l.mu.Unlock()
}

// countedConn gives its place back to its limitListener when closed.
type countedConn struct {
	net.Conn
	l    *limitListener
	key  string
	once sync.Once
}

// Close closes the connection and releases its place (once).
func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// NetConn returns the underlying connection.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// baseConn unwraps TLS and counting wrappers down to the socket.
func baseConn(nc net.Conn) net.Conn {
	for {
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nc
		}
		nc = u.NetConn()
	}
}
