//go:build bdb

package main

import (
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/engine"
)

// backendFigures reads the Berkeley DB environment's figures of a
// writable (serving) database: the last checkpoint (txn_stat) and the
// cache (memp_stat). ok is false for LevelDB and read-only environments,
// which have no transaction region.
func backendFigures(db *engine.DB) (ckpt *checkpointReport, cache *cacheReport, ok bool, err error) {
	es, isBDB := db.Store().(interface{ Env() *bdb.Env })
	if !isBDB || es.Env().ReadOnly() {
		return nil, nil, false, nil
	}
	st, err := es.Env().Stats()
	if err != nil {
		return nil, nil, false, fmt.Errorf("berkeley db statistics: %w", err)
	}
	if st.Txn.LastCkpFile > 0 { // LSN 0/0: no checkpoint record in the log yet
		ckpt = &checkpointReport{
			Time: time.Unix(st.Txn.TimeCkp, 0).UTC(),
			LSN:  fmt.Sprintf("%d/%d", st.Txn.LastCkpFile, st.Txn.LastCkpOffset),
		}
	}
	cache = newCacheReport(st.Mpool.Hits, st.Mpool.Misses)
	return ckpt, cache, true, nil
}
