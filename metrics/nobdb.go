//go:build !bdb

package metrics

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durusbdb/durusbdb/engine"
)

// storeCollector returns nil: without -tags bdb there is no Berkeley DB
// environment, and LevelDB exposes no cheap statistics.
func storeCollector(*engine.DB, *slog.Logger) prometheus.Collector { return nil }
