package metrics

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// limitListener bounds the connections open at once to max. A connection
// that arrives when max are open takes the place of the oldest one that is
// not running a handler (one still waiting for or reading its request
// headers, or one whose handler has returned), which is closed; only when
// all max are running handlers does it wait for one to end. So idle or
// slow clients cannot keep a probe out: they are the ones evicted, while
// the handlers they would wait behind are bounded in time (the probes'
// timeout, the scrape timeout, WriteTimeout).
//
// The http.Server must set ConnContext to l.connContext and wrap its
// handler in l.track, which mark the connection busy while its handler
// runs.
type limitListener struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns []*trackedConn // open, oldest first

	freed  chan struct{} // a connection closed or its handler returned
	closed chan struct{} // Close was called
	once   sync.Once
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{
		Listener: ln,
		max:      max,
		freed:    make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}
}

// Accept waits for a connection, then makes room for it: under max open,
// it is admitted; otherwise the oldest connection not running a handler is
// closed, or, if all run one, Accept holds the new connection until one
// ends (max+1 descriptors at most; later ones wait in the kernel's queue).
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	for {
		l.mu.Lock()
		var victim *trackedConn
		if len(l.conns) >= l.max {
			for i, o := range l.conns {
				if !o.busy {
					victim = o
					l.conns = append(l.conns[:i], l.conns[i+1:]...)
					break
				}
			}
		}
		if len(l.conns) < l.max {
			l.conns = append(l.conns, tc)
			l.mu.Unlock()
			if victim != nil {
				victim.Close()
			}
			return tc, nil
		}
		l.mu.Unlock()
		select {
		case <-l.freed:
		case <-l.closed:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener and ends an Accept waiting for room.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// open returns the number of connections counted as open.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// signal wakes an Accept waiting for room.
func (l *limitListener) signal() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

func (l *limitListener) remove(c *trackedConn) {
	l.mu.Lock()
	for i, o := range l.conns {
		if o == c {
			l.conns = append(l.conns[:i], l.conns[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	l.signal()
}

func (l *limitListener) setBusy(c *trackedConn, busy bool) {
	l.mu.Lock()
	c.busy = busy
	l.mu.Unlock()
	if !busy {
		l.signal()
	}
}

type connKey struct{}

// connContext is the http.Server's ConnContext: it remembers the
// connection, for track.
func (l *limitListener) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// track marks the request's connection busy while h runs.
func (l *limitListener) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tc, ok := r.Context().Value(connKey{}).(*trackedConn); ok && tc.l == l {
			l.setBusy(tc, true)
			defer l.setBusy(tc, false)
		}
		h.ServeHTTP(w, r)
	})
}

// trackedConn is a connection counted by a limitListener.
type trackedConn struct {
	net.Conn
	l    *limitListener
	busy bool // a handler runs; guarded by l.mu
	once sync.Once
}

// Close closes the connection and frees its place.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.remove(c) })
	return err
}
