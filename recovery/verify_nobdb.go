//go:build !bdb

package recovery

// verifyBDB fails: this build has no Berkeley DB.
func verifyBDB(dir string) (int, error) { return 0, errNoBDB(dir) }
