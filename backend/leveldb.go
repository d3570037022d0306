package backend

import (
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/leveldb"
)

func openLevelDB(o kv.Options) (kv.Store, error) { return leveldb.OpenStore(o) }

// LibraryVersions names the storage libraries this binary links and their
// versions, in the order of Compiled: "libdb" (only with -tags bdb) and
// "leveldb".
func LibraryVersions() [][2]string {
	var l [][2]string
	if v := bdbVersion(); v != "" {
		l = append(l, [2]string{"libdb", v})
	}
	return append(l, [2]string{"leveldb", leveldb.LibraryVersion()})
}
