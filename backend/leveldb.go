package backend

import (
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/leveldb"
)

func openLevelDB(o kv.Options) (kv.Store, error) { return leveldb.OpenStore(o) }
