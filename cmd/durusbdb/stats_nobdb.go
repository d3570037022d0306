//go:build !bdb

package main

import "github.com/durusbdb/durusbdb/engine"

// backendFigures: without -tags bdb there is no Berkeley DB environment,
// and LevelDB reports no cheap statistics.
func backendFigures(*engine.DB) (*checkpointReport, *cacheReport, bool, error) {
	return nil, nil, false, nil
}
