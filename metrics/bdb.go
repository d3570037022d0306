//go:build bdb

package metrics

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/engine"
)

// envStore is a kv.Store with a Berkeley DB environment (*bdb.Store).
type envStore interface{ Env() *bdb.Env }

// storeCollector returns the Berkeley DB environment collector when db is
// on Berkeley DB, else nil.
func storeCollector(db *engine.DB, log *slog.Logger) prometheus.Collector {
	es, ok := db.Store().(envStore)
	if !ok {
		return nil
	}
	return NewBDBCollector(es.Env(), log)
}

// bdbCollector reports DB_ENV->log_stat, memp_stat and txn_stat (one call
// each per scrape) and the size of the log files.
type bdbCollector struct {
	env    *bdb.Env
	log    *slog.Logger
	failed atomic.Uint64

	logWritten, logSinceCkpt, logFile, logFiles, logFilesBytes, logWrites, logSyncs, logAhead *prometheus.Desc
	cacheBytes, cachePages, cacheDirty, cacheHits, cacheMisses, cacheEvictions                *prometheus.Desc
	txnCommits, txnAborts, txnActive, ckptTime, statErrors                                    *prometheus.Desc
}

// NewBDBCollector returns a collector of env's statistics:
//
//	durusbdb_bdb_log_written_bytes_total        counter  log bytes written since the environment was opened
//	durusbdb_bdb_log_bytes_since_checkpoint     gauge    log bytes written since the last checkpoint
//	durusbdb_bdb_log_current_file               gauge    number of the current log file
//	durusbdb_bdb_log_files                      gauge    log files in the directory
//	durusbdb_bdb_log_files_bytes                gauge    their total size
//	durusbdb_bdb_log_writes_total               counter  log buffer writes
//	durusbdb_bdb_log_syncs_total                counter  log fsyncs
//	durusbdb_bdb_log_files_written_ahead_total  counter  next log files written with zeros before libdb reached them
//	durusbdb_bdb_cache_bytes                    gauge    configured cache size
//	durusbdb_bdb_cache_pages                    gauge    pages in the cache
//	durusbdb_bdb_cache_dirty_pages              gauge    dirty pages in the cache
//	durusbdb_bdb_cache_hits_total               counter  page requests found in the cache
//	durusbdb_bdb_cache_misses_total             counter  page requests read from disk
//	durusbdb_bdb_cache_evictions_total{state}   counter  pages evicted, clean or dirty
//	durusbdb_bdb_txn_commits_total              counter  transactions committed
//	durusbdb_bdb_txn_aborts_total               counter  transactions aborted
//	durusbdb_bdb_txn_active                     gauge    transactions open
//	durusbdb_bdb_last_checkpoint_timestamp_seconds gauge Unix time of the last checkpoint (txn_stat)
//	durusbdb_bdb_stat_errors_total              counter  scrapes whose stat calls failed
//
// The hit rate is rate(hits) / (rate(hits) + rate(misses)). A read-only
// environment has only the cache figures. Counters start at the open of
// the environment (recovery recreates the regions).
func NewBDBCollector(env *bdb.Env, log *slog.Logger) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc { return desc("bdb_"+name, help, labels...) }
	return &bdbCollector{
		env:            env,
		log:            log,
		logWritten:     d("log_written_bytes_total", "Berkeley DB log bytes written since the environment was opened."),
		logSinceCkpt:   d("log_bytes_since_checkpoint", "Berkeley DB log bytes written since the last checkpoint."),
		logFile:        d("log_current_file", "Number of the current Berkeley DB log file."),
		logFiles:       d("log_files", "Berkeley DB log files in the database directory."),
		logFilesBytes:  d("log_files_bytes", "Total size of the Berkeley DB log files."),
		logWrites:      d("log_writes_total", "Berkeley DB log buffer writes."),
		logSyncs:       d("log_syncs_total", "Berkeley DB log fsyncs."),
		logAhead:       d("log_files_written_ahead_total", "Berkeley DB log files written with zeros before libdb switched to them (a commit's fsync then allocates no block)."),
		cacheBytes:     d("cache_bytes", "Configured Berkeley DB cache size."),
		cachePages:     d("cache_pages", "Pages in the Berkeley DB cache."),
		cacheDirty:     d("cache_dirty_pages", "Dirty pages in the Berkeley DB cache."),
		cacheHits:      d("cache_hits_total", "Page requests found in the Berkeley DB cache."),
		cacheMisses:    d("cache_misses_total", "Page requests not found in the Berkeley DB cache."),
		cacheEvictions: d("cache_evictions_total", "Pages evicted from the Berkeley DB cache, clean or dirty.", "state"),
		txnCommits:     d("txn_commits_total", "Berkeley DB transactions committed."),
		txnAborts:      d("txn_aborts_total", "Berkeley DB transactions aborted."),
		txnActive:      d("txn_active", "Berkeley DB transactions open."),
		ckptTime:       d("last_checkpoint_timestamp_seconds", "Unix time of the last Berkeley DB checkpoint (txn_stat)."),
		statErrors:     d("stat_errors_total", "Scrapes whose Berkeley DB stat calls failed."),
	}
}

// Describe implements prometheus.Collector.
func (c *bdbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logWritten, c.logSinceCkpt, c.logFile, c.logFiles, c.logFilesBytes,
		c.logWrites, c.logSyncs, c.logAhead, c.cacheBytes, c.cachePages, c.cacheDirty, c.cacheHits, c.cacheMisses,
		c.cacheEvictions, c.txnCommits, c.txnAborts, c.txnActive, c.ckptTime, c.statErrors} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *bdbCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	fail := func(err error) {
		n := c.failed.Add(1)
		counter(c.statErrors, n)
		if c.log != nil {
			c.log.Warn("metrics: Berkeley DB stats failed", "dir", c.env.Dir(), "err", err)
		}
	}
	st, err := c.env.Stats()
	if err != nil {
		fail(err)
		return
	}
	var files []string
	if !c.env.ReadOnly() {
		if files, err = c.env.LogFiles(true); err != nil {
			fail(err)
			return
		}
	}
	counter(c.statErrors, c.failed.Load())

	m := st.Mpool
	gauge(c.cacheBytes, float64(m.CacheBytes))
	gauge(c.cachePages, float64(m.Pages))
	gauge(c.cacheDirty, float64(m.PagesDirty))
	counter(c.cacheHits, m.Hits)
	counter(c.cacheMisses, m.Misses)
	counter(c.cacheEvictions, m.CleanEvictions, "clean")
	counter(c.cacheEvictions, m.DirtyEvictions, "dirty")
	if c.env.ReadOnly() {
		return
	}
	l := st.Log
	counter(c.logWritten, uint64(l.WMbytes)<<20+uint64(l.WBytes))
	gauge(c.logSinceCkpt, float64(uint64(l.WcMbytes)<<20+uint64(l.WcBytes)))
	gauge(c.logFile, float64(l.CurFile))
	counter(c.logWrites, l.Writes)
	counter(c.logSyncs, l.Syncs)
	counter(c.logAhead, c.env.LogsWrittenAhead())
	var size int64
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(c.env.Dir(), f)); err == nil {
			size += fi.Size()
		}
	}
	gauge(c.logFiles, float64(len(files)))
	gauge(c.logFilesBytes, float64(size))
	t := st.Txn
	counter(c.txnCommits, t.NCommits)
	counter(c.txnAborts, t.NAborts)
	gauge(c.txnActive, float64(t.NActive))
	if t.TimeCkp > 0 {
		gauge(c.ckptTime, float64(t.TimeCkp))
	}
}
