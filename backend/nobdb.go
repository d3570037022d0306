//go:build !bdb

package backend

// bdbOpener returns nil: this build lacks -tags bdb.
func bdbOpener() opener { return nil }

// bdbVersion is empty: this build has no libdb.
func bdbVersion() string { return "" }
