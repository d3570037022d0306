package recovery

import (
	"fmt"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/leveldb"
)

// VerifyBackend runs the backend's own structural verification of the
// database files in dir, before any engine-level check: Berkeley DB's
// DB->verify on every database file (what db_verify does), LevelDB's
// table, log and MANIFEST checksums. The directory must not be in use by
// a server. A damaged file gives an error naming it and wrapping
// kv.ErrCorrupt. It returns the number of files verified.
func VerifyBackend(dir string) (int, error) {
	kind, err := backend.Detect(dir)
	if err != nil {
		return 0, err
	}
	switch kind {
	case backend.BDB:
		return verifyBDB(dir)
	case backend.LevelDB:
		if err := leveldb.Verify(dir, -1); err != nil {
			return 0, err
		}
		return 1, nil
	}
	return 0, fmt.Errorf("recovery: verify %s: no database in this directory", dir)
}

// PageChecksumsOff lists the database files of the Berkeley DB directory
// dir that were created without page checksums (by releases before page
// checksums, or by the Python original): a page of them damaged on disk
// is read as data, where a file with checksums refuses it. `durusbdb copy`
// into a new directory writes files that have them. It returns nil for a
// LevelDB directory, whose tables and log always carry checksums.
func PageChecksumsOff(dir string) ([]string, error) {
	kind, err := backend.Detect(dir)
	if err != nil || kind != backend.BDB || !bdbCompiled() {
		return nil, nil
	}
	return pageChecksumsOff(dir)
}
