//go:build !bdb

package main

import (
	"context"

	"github.com/durusbdb/durusbdb/engine"
)

// replGroupOf: without -tags bdb no database is replicated.
func replGroupOf(db *engine.DB, dir string) (replGroup, error) {
	return replGroup{}, notReplicated(db, dir)
}

// replRemove: without -tags bdb no database is replicated.
func replRemove(_ context.Context, db *engine.DB, dir, _ string, _ bool) (replGroup, bool, error) {
	return replGroup{}, false, notReplicated(db, dir)
}
