package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails is left out of the scrape and logged (to log, if not
// nil) instead of failing the whole scrape.
func (m *Metrics) Handler(log *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             30 * time.Second,
	}
	if log != nil {
		opts.ErrorLog = slogPrinter{log}
	}
	return promhttp.HandlerFor(m.reg, opts)
}

// slogPrinter adapts a slog.Logger to promhttp's error logger.
type slogPrinter struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }

// Endpoint is a running HTTP server with /metrics; see Listen.
type Endpoint struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	err  error // Serve's error, after done

	once     sync.Once
	closeErr error
}

// MaxConns is the number of HTTP connections open at once (scrapers,
// health checks). It bounds the listener's memory and descriptors: each
// connection costs a goroutine, 8 KiB of buffers and at most MaxHeaderBytes
// of request headers, so 32 take about 1 MiB at worst, and a flood of
// connections cannot take the descriptors the storage needs. 32 is several
// times what a deployment uses (a Prometheus or two, the liveness and
// readiness probes, a load balancer's check), each request being short.
//
// A connection that arrives when MaxConns are open closes the oldest one
// that is not being answered (waiting for or reading its request, or
// done), so idle or slow clients cannot keep a probe out; only when all
// MaxConns are being answered does it wait, for at most the time a handler
// takes (1 s for the probes, 30 s for a scrape, WriteTimeout at worst).
const MaxConns = 32

// ReadHeaderTimeout is how long a connection of the metrics listener may
// take to send its request headers from its opening; then it is closed.
// Probes and scrapers send theirs at once; 5 s leaves room for a slow
// network while bounding a client that sends them byte by byte.
const ReadHeaderTimeout = 5 * time.Second

// maxHeaderBytes bounds a request's headers (probes send a few hundred
// bytes; net/http's default is 1 MiB).
const maxHeaderBytes = 16 << 10

// Listen listens on addr (host:port; port 0 picks one) and serves
// m.Handler at /metrics, the probes /healthz (HealthHandler) and /readyz
// (ReadyHandler), the replication role at /role (RoleHandler), and a short page pointing there at /, in the background
// until Close. Errors of the listener are returned at once. No request is
// logged. Each connection serves one request (no keep-alive), within
// ReadHeaderTimeout for its headers, and at most MaxConns are open.
func (m *Metrics) Listen(addr string, log *slog.Logger) (*Endpoint, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	// At most MaxConns connections: a new one displaces the oldest one not
	// being answered (see MaxConns).
	lim := newLimitListener(ln, MaxConns)
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler(log))
	mux.Handle("/healthz", m.HealthHandler())
	mux.Handle("/readyz", m.ReadyHandler())
	mux.Handle("/role", m.RoleHandler())
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "durusbdb metrics: /metrics\nliveness: /healthz\nreadiness: /readyz\nreplication role: /role")
	})
	e := &Endpoint{
		srv: &http.Server{
			Handler:           lim.track(mux),
			ConnContext:       lim.connContext,
			ReadHeaderTimeout: ReadHeaderTimeout,
			WriteTimeout:      60 * time.Second,
			MaxHeaderBytes:    maxHeaderBytes,
		},
		ln:   lim,
		done: make(chan struct{}),
	}
	// One request per connection: an idle keep-alive connection would hold
	// a place of MaxConns for nothing. Probes and scrapers just open a
	// new connection per request (one TCP handshake on loopback or LAN).
	e.srv.SetKeepAlivesEnabled(false)
	if log != nil {
		e.srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		log.Info("metrics: serving", "address", ln.Addr().String(), "path", "/metrics")
	}
	go func() {
		defer close(e.done)
		if err := e.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			e.err = err
			if log != nil {
				log.Error("metrics: HTTP server failed", "address", ln.Addr().String(), "err", err)
			}
		}
	}()
	return e, nil
}

// Addr returns the address listened on.
func (e *Endpoint) Addr() net.Addr { return e.ln.Addr() }

// Close stops the HTTP server: it stops listening, lets scrapes in progress
// finish until ctx ends, then closes the rest. It returns the server's own
// error, if it failed earlier. Close may be called more than once.
func (e *Endpoint) Close(ctx context.Context) error {
	e.once.Do(func() { e.closeErr = e.close(ctx) })
	return e.closeErr
}

func (e *Endpoint) close(ctx context.Context) error {
	err := e.srv.Shutdown(ctx)
	if err != nil {
		e.srv.Close()
	}
	<-e.done
	if e.err != nil {
		return e.err
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("metrics: shutting down %s: %w", e.ln.Addr(), err)
	}
	return nil
}
