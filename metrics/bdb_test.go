//go:build bdb

package metrics

import "testing"

func backends() []string { return []string{"leveldb", "bdb"} }

// checkBackendMetrics checks the Berkeley DB environment figures after one
// durable commit.
func checkBackendMetrics(t *testing.T, backend string, v map[string]float64) {
	t.Helper()
	_, ok := v["durusbdb_bdb_cache_bytes"]
	if backend != "bdb" {
		if ok {
			t.Errorf("%s database reports durusbdb_bdb_cache_bytes", backend)
		}
		return
	}
	for _, name := range []string{"durusbdb_bdb_cache_bytes", "durusbdb_bdb_log_files", "durusbdb_bdb_log_files_bytes",
		"durusbdb_bdb_log_written_bytes_total", "durusbdb_bdb_log_syncs_total", "durusbdb_bdb_txn_commits_total",
		"durusbdb_bdb_log_current_file"} {
		if v[name] < 1 {
			t.Errorf("%s = %v, want >= 1", name, v[name])
		}
	}
	if _, ok := v["durusbdb_bdb_log_files_written_ahead_total"]; !ok {
		t.Error("no durusbdb_bdb_log_files_written_ahead_total")
	}
	if v["durusbdb_bdb_stat_errors_total"] != 0 {
		t.Errorf("durusbdb_bdb_stat_errors_total = %v", v["durusbdb_bdb_stat_errors_total"])
	}
	if v["durusbdb_bdb_cache_hits_total"]+v["durusbdb_bdb_cache_misses_total"] < 1 {
		t.Errorf("no cache requests counted")
	}
}
