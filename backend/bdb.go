//go:build bdb

package backend

import (
	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
)

// bdbOpener returns the Berkeley DB opener: this build has -tags bdb.
func bdbOpener() opener {
	return func(o kv.Options) (kv.Store, error) { return bdb.OpenStore(o) }
}

// bdbVersion is the linked libdb's version string.
func bdbVersion() string { return bdb.LibraryVersion() }
