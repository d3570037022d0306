//go:build !bdb

package backend

// bdbOpener returns nil: this build lacks -tags bdb.
func bdbOpener() opener { return nil }
