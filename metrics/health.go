package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durusbdb/durusbdb/engine"
)

// DefaultProbeTimeout bounds the storage round trip of /healthz and
// /readyz.
const DefaultProbeTimeout = time.Second

// ProbeStore is the storage that /healthz and /readyz ask: *engine.DB.
type ProbeStore interface {
	// Load returns oid's record or an error wrapping engine.ErrNotFound.
	Load(oid uint64) ([]byte, error)
	// ReadOnly reports whether commits are refused by configuration.
	ReadOnly() bool
	// Dir is the database directory, whose file system's free space is
	// checked.
	Dir() string
}

// Probes configure the /healthz and /readyz handlers; see SetProbes.
type Probes struct {
	// Store is asked for oid 0; nil (the database is not open yet) fails
	// both probes.
	Store ProbeStore
	// MinFreeSpace is the free-space reserve of the engine (serve
	// --min-free-space): /readyz fails while the database's file system has
	// less free. 0 or less: no reserve.
	MinFreeSpace int64
	// Stopping is closed when the server starts to shut down; /readyz
	// fails from then on. Nil: never.
	Stopping <-chan struct{}
	// Timeout bounds the load of oid 0; 0 means DefaultProbeTimeout.
	Timeout time.Duration
}

// probeState is the Probes in use and the slot of the one load in flight.
type probeState struct {
	Probes
	slot chan struct{} // capacity 1: a load that overruns holds it
}

// ErrProbe is wrapped by every reason a probe gives for failing.
var ErrProbe = errors.New("metrics: probe failed")

// SetProbes sets what /healthz and /readyz check. Until it is called both
// answer 503 (the database is being opened). It also sets the
// durusbdb_min_free_space_bytes gauge. Safe to call while serving.
func (m *Metrics) SetProbes(p Probes) {
	if p.Timeout <= 0 {
		p.Timeout = DefaultProbeTimeout
	}
	m.minFree.Set(float64(max(p.MinFreeSpace, 0)))
	m.probes.Store(&probeState{Probes: p, slot: make(chan struct{}, 1)})
}

// Live checks the storage with a round trip: a load of oid 0 must answer
// (a record, or "not found" on an empty database) within the probe
// timeout. At most one load runs at a time: while a load that overran is
// still running, Live fails at once.
func (m *Metrics) Live(ctx context.Context) error {
	ps := m.probes.Load()
	if ps == nil || ps.Store == nil {
		return fmt.Errorf("%w: the database is not open yet", ErrProbe)
	}
	select {
	case ps.slot <- struct{}{}:
	default:
		return fmt.Errorf("%w: an earlier load of oid 0 has not returned", ErrProbe)
	}
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			<-ps.slot // free before answering: the next probe may follow at once
			done <- err
		}()
		_, err = ps.Store.Load(0)
	}()
	t := time.NewTimer(ps.Timeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("%w: load of oid 0: %w", ErrProbe, err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%w: load of oid 0 did not answer within %v", ErrProbe, ps.Timeout)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrProbe, ctx.Err())
	}
}

// Ready checks that commits are accepted: the server is not shutting
// down, the database is not read-only, a replicated site is master or an
// in-sync replica (which serves loads and forwards commits; see SetRole),
// the storage answers (Live), its file system is writable and has more
// free space than the reserve.
func (m *Metrics) Ready(ctx context.Context) error {
	ps := m.probes.Load()
	if ps == nil || ps.Store == nil {
		return fmt.Errorf("%w: the database is not open yet", ErrProbe)
	}
	if ps.Stopping != nil {
		select {
		case <-ps.Stopping:
			return fmt.Errorf("%w: the server is shutting down", ErrProbe)
		default:
		}
	}
	if ps.Store.ReadOnly() {
		return fmt.Errorf("%w: the database is open read-only (--readonly)", ErrProbe)
	}
	if err := m.readyRole(); err != nil {
		return err
	}
	if err := m.Live(ctx); err != nil {
		return err
	}
	fs, err := FreeSpace(ps.Store.Dir())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProbe, err)
	}
	return fs.admits(ps.Store.Dir(), ps.MinFreeSpace)
}

// admits says, as the engine's free-space guard decides, why the file
// system of dir refuses commits (ErrProbe), or nil.
func (fs FileSystem) admits(dir string, minFree int64) error {
	if fs.ReadOnly {
		return fmt.Errorf("%w: the file system of %s is mounted read-only", ErrProbe, dir)
	}
	if minFree <= 0 {
		return nil // the engine's guard is off
	}
	if fs.Free < minFree {
		return fmt.Errorf("%w: %d bytes free on the file system of %s, below the reserve of %d (--min-free-space): commits are refused",
			ErrProbe, fs.Free, dir, minFree)
	}
	if fs.FreeInodes >= 0 && fs.FreeInodes < engine.MinFreeInodes {
		return fmt.Errorf("%w: %d inodes free on the file system of %s (df -i), below %d: commits are refused",
			ErrProbe, fs.FreeInodes, dir, engine.MinFreeInodes)
	}
	return nil
}

// FileSystem is what FreeSpace reports of a file system.
type FileSystem struct {
	Free       int64 // bytes available to an unprivileged user
	Size       int64 // total bytes
	FreeInodes int64 // free inodes; -1 when the file system reports none (btrfs)
	ReadOnly   bool  // mounted read-only
}

// stReadOnly is ST_RDONLY in statfs's f_flags.
const stReadOnly = 0x1

// FreeSpace reports the file system holding dir (statfs), as the engine's
// free-space guard sees it.
func FreeSpace(dir string) (FileSystem, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return FileSystem{}, fmt.Errorf("metrics: statfs %s: %w", dir, err)
	}
	return FileSystem{
		Free:       int64(st.Bavail) * int64(st.Bsize),
		Size:       int64(st.Blocks) * int64(st.Bsize),
		FreeInodes: engine.FreeInodes(&st),
		ReadOnly:   st.Flags&stReadOnly != 0,
	}, nil
}

// probeHandler answers 200 "ok" when check passes, else 503 with the
// reason. It writes no log line: probes run every few seconds.
func probeHandler(check func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := check(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error())
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// HealthHandler serves /healthz: 200 while the storage answers a load of
// oid 0 within the probe timeout, else 503 (see Live).
func (m *Metrics) HealthHandler() http.Handler { return probeHandler(m.Live) }

// ReadyHandler serves /readyz: 200 while commits are accepted (on a
// replica: forwarded to the master), else 503 with the reason (see Ready).
func (m *Metrics) ReadyHandler() http.Handler { return probeHandler(m.Ready) }

// fsCollector reports the free space of a database's file system, read
// once per scrape.
type fsCollector struct {
	dir        string
	free, size *prometheus.Desc
}

// newFSCollector returns the collector of dir's file system:
//
//	durusbdb_filesystem_free_bytes   gauge  bytes available on the database's file system
//	durusbdb_filesystem_size_bytes   gauge  size of that file system
func newFSCollector(dir string) *fsCollector {
	return &fsCollector{
		dir:  dir,
		free: desc("filesystem_free_bytes", "Bytes available to the server on the database's file system (statfs f_bavail); commits are refused below durusbdb_min_free_space_bytes."),
		size: desc("filesystem_size_bytes", "Size of the database's file system, bytes."),
	}
}

// Describe implements prometheus.Collector.
func (c *fsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.free; ch <- c.size }

// Collect implements prometheus.Collector. A failed statfs leaves both
// out of the scrape.
func (c *fsCollector) Collect(ch chan<- prometheus.Metric) {
	fs, err := FreeSpace(c.dir)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(fs.Free))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(fs.Size))
}
