package metrics

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durusbdb/durusbdb/engine"
)

// StatsSource is what the engine collector reads: *engine.DB.
type StatsSource interface {
	Stats() (engine.Stats, error)
}

// engineCollector reports engine.Stats, read once per scrape.
type engineCollector struct {
	src     StatsSource
	version string // durusbdb_info's version label
	log     *slog.Logger
	failed  atomic.Uint64 // Stats errors

	objects, nextOID, gcQueue, gcFreed, gcCollections, fullRunning *prometheus.Desc
	commits, committedBytes, flushes, flushTime, checkpoints       *prometheus.Desc
	lastCheckpoint                                                 *prometheus.Desc
	unclean, info, statsErrors                                     *prometheus.Desc
	recHits, recMisses, recBytes                                   *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

// NewEngineCollector returns a collector of src's statistics (normally an
// *engine.DB), read with one Stats call per scrape:
//
//	durusbdb_objects                            gauge    records stored (meta size)
//	durusbdb_next_oid                           gauge    durable next_oid
//	durusbdb_gc_queue_length                    gauge    garbage candidates queued (garbage.db entries)
//	durusbdb_gc_freed_objects_total             counter  objects freed by collections (rate: the GC rate)
//	durusbdb_gc_collections_total               counter  collector transactions that freed objects + full collections
//	durusbdb_gc_full_collection_running         gauge    1 while a full collection (or import) runs
//	durusbdb_engine_commits_total               counter  commits applied since open
//	durusbdb_engine_committed_bytes_total       counter  record bytes (+8 per record) committed since open
//	durusbdb_group_flushes_total                counter  group-commit log flushes since open
//	durusbdb_group_flush_seconds_total          counter  time those flushes spent writing and syncing the log
//	durusbdb_checkpoints_total                  counter  checkpoints since open
//	durusbdb_last_checkpoint_timestamp_seconds  gauge    Unix time of the last checkpoint (absent before the first)
//	durusbdb_record_cache_hits_total            counter  loads answered by the engine's record cache
//	durusbdb_record_cache_misses_total          counter  loads that read the store
//	durusbdb_record_cache_bytes                 gauge    record cache size (records + bookkeeping)
//	durusbdb_unclean_shutdown                   gauge    1 if the database was not closed cleanly before this open
//	durusbdb_info{version,backend,access,durability,readonly} gauge 1 (version: durusbdb's release)
//	durusbdb_stats_errors_total                 counter  scrapes whose Stats call failed
//
// The gc counters are kept in the database (they survive restarts); the
// others count from the open. A failed Stats call is logged (to log, if not
// nil) and counted; the other metrics are then left out of that scrape.
// version is the version label of durusbdb_info.
func NewEngineCollector(src StatsSource, version string, log *slog.Logger) prometheus.Collector {
	return &engineCollector{
		src:            src,
		version:        version,
		log:            log,
		objects:        desc("objects", "Records stored (meta size)."),
		nextOID:        desc("next_oid", "Durable next_oid: oids below it have been handed out or reserved."),
		gcQueue:        desc("gc_queue_length", "Garbage candidates queued for the reference-count collector."),
		gcFreed:        desc("gc_freed_objects_total", "Objects freed by the collector and full collections (kept in the database)."),
		gcCollections:  desc("gc_collections_total", "Collector transactions that freed objects plus full collections (kept in the database)."),
		fullRunning:    desc("gc_full_collection_running", "1 while a full collection (or an import) runs."),
		commits:        desc("engine_commits_total", "Commits applied by the engine since open."),
		committedBytes: desc("engine_committed_bytes_total", "Record bytes (+8 per record) committed since open."),
		flushes:        desc("group_flushes_total", "Group-commit log flushes since open (one covers many commits)."),
		flushTime:      desc("group_flush_seconds_total", "Time the group-commit flushes spent writing and syncing the log since open (÷ flushes: the fsync latency under load)."),
		checkpoints:    desc("checkpoints_total", "Checkpoints run since open."),
		lastCheckpoint: desc("last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint (absent before the first one)."),
		recHits:        desc("record_cache_hits_total", "Loads answered by the engine's record cache since open."),
		recMisses:      desc("record_cache_misses_total", "Loads that read the store (record cache misses) since open."),
		recBytes:       desc("record_cache_bytes", "Record cache size: records plus bookkeeping, bytes."),
		unclean:        desc("unclean_shutdown", "1 if the database was not closed cleanly before this open."),
		info:           desc("info", "durusbdb's release and database facts, value 1.", "version", "backend", "access", "durability", "readonly"),
		statsErrors:    desc("stats_errors_total", "Scrapes whose engine Stats call failed."),
	}
}

// Describe implements prometheus.Collector.
func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.objects, c.nextOID, c.gcQueue, c.gcFreed, c.gcCollections, c.fullRunning,
		c.commits, c.committedBytes, c.flushes, c.flushTime, c.checkpoints, c.lastCheckpoint, c.unclean, c.info, c.statsErrors,
		c.recHits, c.recMisses, c.recBytes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.src.Stats()
	if err != nil {
		n := c.failed.Add(1)
		ch <- prometheus.MustNewConstMetric(c.statsErrors, prometheus.CounterValue, float64(n))
		if c.log != nil {
			c.log.Warn("metrics: engine stats failed", "err", err)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(c.statsErrors, prometheus.CounterValue, float64(c.failed.Load()))
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(c.objects, float64(st.Objects))
	gauge(c.nextOID, float64(st.NextOID))
	gauge(c.gcQueue, float64(st.GCQueue))
	counter(c.gcFreed, st.GCFreed)
	counter(c.gcCollections, st.GCCollections)
	gauge(c.fullRunning, b2f(st.FullCollecting))
	counter(c.commits, st.Commits)
	counter(c.committedBytes, st.CommittedBytes)
	counter(c.flushes, st.Flushes)
	ch <- prometheus.MustNewConstMetric(c.flushTime, prometheus.CounterValue, st.FlushTime.Seconds())
	counter(c.checkpoints, st.CheckpointsSince)
	counter(c.recHits, st.RecordCacheHits)
	counter(c.recMisses, st.RecordCacheMiss)
	gauge(c.recBytes, float64(st.RecordCacheBytes))
	if !st.LastCheckpoint.IsZero() {
		gauge(c.lastCheckpoint, float64(st.LastCheckpoint.UnixNano())/1e9)
	}
	gauge(c.unclean, b2f(st.UncleanShutdown))
	gauge(c.info, 1, c.version, st.Backend, st.Access, st.Durability, boolLabel(st.ReadOnly))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// RegisterEngine registers the collectors of db on the registry: the
// engine's statistics (NewEngineCollector, with Options.Version), the free
// space of its file system (durusbdb_filesystem_free_bytes and
// durusbdb_filesystem_size_bytes) and, for a Berkeley DB database
// in a binary built with -tags bdb, the environment's statistics
// (durusbdb_bdb_*, see the bdb build of storeCollector). Failed scrapes are
// logged to log if not nil.
func (m *Metrics) RegisterEngine(db *engine.DB, log *slog.Logger) error {
	if err := m.reg.Register(NewEngineCollector(db, m.version, log)); err != nil {
		return fmt.Errorf("metrics: registering the engine collector: %w", err)
	}
	if err := m.reg.Register(newFSCollector(db.Dir())); err != nil {
		return fmt.Errorf("metrics: registering the file system collector: %w", err)
	}
	if sc := storeCollector(db, log); sc != nil {
		return m.reg.Register(sc)
	}
	return nil
}
