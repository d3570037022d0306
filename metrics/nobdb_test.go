//go:build !bdb

package metrics

import "testing"

func backends() []string { return []string{"leveldb"} }

// checkBackendMetrics checks no Berkeley DB figures appear without -tags bdb.
func checkBackendMetrics(t *testing.T, backend string, v map[string]float64) {
	t.Helper()
	if _, ok := v["durusbdb_bdb_cache_bytes"]; ok {
		t.Errorf("durusbdb_bdb_cache_bytes reported without -tags bdb")
	}
}
