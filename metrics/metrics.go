package metrics

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/durusbdb/durusbdb/server"
)

// Namespace prefixes every metric name.
const Namespace = "durusbdb"

// Options configure New.
type Options struct {
	// NoRuntime leaves out the Go runtime and process collectors (tests
	// that count metrics).
	NoRuntime bool
	// CommitBuckets are the upper bounds, in seconds, of the commit latency
	// histograms; nil means DefaultCommitBuckets().
	CommitBuckets []float64
	// Version is durusbdb's release, the version label of durusbdb_info.
	Version string
}

// DefaultCommitBuckets returns the commit latency histogram buckets, in
// seconds: 100 µs to 10 s.
func DefaultCommitBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// commands are the request command bytes with their own label value;
// others count as "other".
const commands = "VNMLBSCPQ."

// loadStatuses are the load replies (server.Observer.Load).
const loadStatuses = "OKIE"

// maxRule is the highest refusal rule of docs/spec/PROTOCOL.md §5.5.
const maxRule = 12

// Stages of the commit latency histogram, indexes of Metrics.commitLatency.
const (
	stageTokenWait = iota
	stageApply
	stageDurable
	stageTotal
	numStages
)

// stageName returns the label value of a commit latency stage.
func stageName(i int) string {
	return [numStages]string{"token_wait", "apply", "durable", "total"}[i]
}

// Metrics is a private Prometheus registry with durusbdb's metrics; it
// implements server.Observer. Create it with New. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	connections   prometheus.Gauge
	connOpened    prometheus.Counter
	connClosed    *prometheus.CounterVec
	requests      [256]prometheus.Counter
	loads         [256]prometheus.Counter
	commits       [256]prometheus.Counter
	refusals      [maxRule + 1]prometheus.Counter
	commitRecords prometheus.Counter
	commitBytes   prometheus.Counter
	commitLatency [numStages]prometheus.Observer
	invalidQueued prometheus.Counter
	invalidSent   prometheus.Counter
	bytesReceived prometheus.Counter
	bytesSent     prometheus.Counter
	errors        [server.NumErrorKinds]prometheus.Counter

	version string                     // Options.Version
	minFree prometheus.Gauge           // durusbdb_min_free_space_bytes
	probes  atomic.Pointer[probeState] // SetProbes; nil until then
	role    atomic.Pointer[roleHolder] // SetRole; nil: not replicated
}

var _ server.Observer = (*Metrics)(nil)

// New returns Metrics with the server metrics (and, unless opts.NoRuntime,
// the Go and process collectors) registered on a new private registry:
//
//	durusbdb_connections                      gauge    open client connections
//	durusbdb_connections_opened_total         counter  connections served
//	durusbdb_connections_closed_total{reason} counter  connections ended, by reason
//	durusbdb_requests_total{command}          counter  requests by command byte (V N M L B S C P Q . other)
//	durusbdb_loads_total{status}              counter  oids answered by L and B, by reply (O K I E)
//	durusbdb_commits_total{status}            counter  decided commits by reply: O stored, I conflict, E refused
//	durusbdb_commit_refusals_total{rule}      counter  commits answered I or E, by rule of docs/spec/PROTOCOL.md §5.5
//	durusbdb_commit_records_total             counter  records stored by commits answered O
//	durusbdb_commit_bytes_total               counter  commit data bytes of commits answered O
//	durusbdb_commit_duration_seconds{stage}   histogram commits answered O: token_wait, apply, durable, total
//	durusbdb_invalidations_queued_total       counter  oids added to other connections' invalid sets (per connection)
//	durusbdb_invalidations_sent_total         counter  invalid oids reported to clients (S, commit phase 1)
//	durusbdb_received_bytes_total             counter  bytes read from clients
//	durusbdb_sent_bytes_total                 counter  bytes written to clients
//	durusbdb_errors_total{kind}               counter  errors by server.ErrorKind name
//	durusbdb_min_free_space_bytes             gauge    free-space reserve below which commits are refused (SetProbes)
func New(opts Options) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), version: opts.Version}
	r := m.reg
	if !opts.NoRuntime {
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
		r.MustRegister(c)
		return c
	}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, []string{label})
		r.MustRegister(c)
		return c
	}

	m.connections = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "connections",
		Help: "Open client connections."})
	r.MustRegister(m.connections)
	m.connOpened = counter("connections_opened_total", "Client connections served since start.")
	m.connClosed = counterVec("connections_closed_total", "Client connections ended, by reason.", "reason")

	reqs := counterVec("requests_total", "Requests by command byte.", "command")
	other := reqs.WithLabelValues("other")
	for i := range m.requests {
		m.requests[i] = other
	}
	for i := range len(commands) {
		m.requests[commands[i]] = reqs.WithLabelValues(commands[i : i+1])
	}

	loads := counterVec("loads_total", "Oids answered by L and B requests, by reply status (O record, K none, I invalid, E failed).", "status")
	for i := range len(loadStatuses) {
		m.loads[loadStatuses[i]] = loads.WithLabelValues(loadStatuses[i : i+1])
	}
	commits := counterVec("commits_total", "Decided commits by reply status: O stored, I conflict, E refused.", "status")
	for _, st := range "OIE" {
		m.commits[st] = commits.WithLabelValues(string(st))
	}
	refusals := counterVec("commit_refusals_total", "Commits answered I or E, by rule of docs/spec/PROTOCOL.md section 5.5.", "rule")
	for rule := 1; rule <= maxRule; rule++ {
		m.refusals[rule] = refusals.WithLabelValues(strconv.Itoa(rule))
	}
	m.commitRecords = counter("commit_records_total", "Records stored by commits answered O.")
	m.commitBytes = counter("commit_bytes_total", "Commit data bytes of commits answered O.")
	buckets := opts.CommitBuckets
	if buckets == nil {
		buckets = DefaultCommitBuckets()
	}
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "commit_duration_seconds",
		Help: "Latency of commits answered O by stage: token_wait (C to token), apply (data received to applied and invalidated), " +
			"durable (group commit wait), total (C to reply, including the client sending the data).",
		Buckets: buckets}, []string{"stage"})
	r.MustRegister(lat)
	for i := range numStages {
		m.commitLatency[i] = lat.WithLabelValues(stageName(i))
	}

	m.invalidQueued = counter("invalidations_queued_total", "Oids added to other connections' invalid sets by commits and collections, counted once per connection.")
	m.invalidSent = counter("invalidations_sent_total", "Invalid oids reported to clients (S and commit phase 1).")
	m.bytesReceived = counter("received_bytes_total", "Bytes read from client connections.")
	m.bytesSent = counter("sent_bytes_total", "Bytes written to client connections.")
	errs := counterVec("errors_total", "Errors by kind (see server.ErrorKind); each also has a log line.", "kind")
	for k := range server.NumErrorKinds {
		m.errors[k] = errs.WithLabelValues(k.String())
	}
	m.minFree = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "min_free_space_bytes",
		Help: "Free-space reserve (serve --min-free-space): commits that would leave less free on the database's file system are refused; 0: none."})
	r.MustRegister(m.minFree)
	return m
}

// Registry returns the private registry, to add collectors or gather.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConnOpened implements server.Observer.
func (m *Metrics) ConnOpened(string) {
	m.connections.Inc()
	m.connOpened.Inc()
}

// ConnClosed implements server.Observer.
func (m *Metrics) ConnClosed(_, reason string) {
	m.connections.Dec()
	m.connClosed.WithLabelValues(reason).Inc()
}

// Request implements server.Observer.
func (m *Metrics) Request(cmd byte) { m.requests[cmd].Inc() }

// Load implements server.Observer.
func (m *Metrics) Load(status byte) {
	if c := m.loads[status]; c != nil {
		c.Inc()
	}
}

// Commit implements server.Observer.
func (m *Metrics) Commit(r server.CommitResult) {
	if c := m.commits[r.Status]; c != nil {
		c.Inc()
	}
	if r.Rule > 0 && r.Rule <= maxRule {
		m.refusals[r.Rule].Inc()
	}
	if r.Status != 'O' {
		return
	}
	m.commitRecords.Add(float64(r.Records))
	m.commitBytes.Add(float64(r.Bytes))
	m.commitLatency[stageTokenWait].Observe(r.TokenWait.Seconds())
	m.commitLatency[stageApply].Observe(r.Apply.Seconds())
	m.commitLatency[stageDurable].Observe(r.Durable.Seconds())
	m.commitLatency[stageTotal].Observe(r.Total.Seconds())
}

// Invalidated implements server.Observer.
func (m *Metrics) Invalidated(oids uint64, conns int) {
	m.invalidQueued.Add(float64(oids) * float64(conns))
}

// InvalidSent implements server.Observer.
func (m *Metrics) InvalidSent(oids uint64) { m.invalidSent.Add(float64(oids)) }

// BytesRead implements server.Observer.
func (m *Metrics) BytesRead(n int) { m.bytesReceived.Add(float64(n)) }

// BytesWritten implements server.Observer.
func (m *Metrics) BytesWritten(n int) { m.bytesSent.Add(float64(n)) }

// Error implements server.Observer.
func (m *Metrics) Error(kind server.ErrorKind) {
	if kind < server.NumErrorKinds {
		m.errors[kind].Inc()
	}
}
