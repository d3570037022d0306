package leveldb_test

import (
	"testing"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

func openStore(t testing.TB, opts kv.Options) kv.Store {
	t.Helper()
	s, err := leveldb.OpenStore(opts)
	if err != nil {
		t.Fatalf("open %s: %v", opts.Dir, err)
	}
	return s
}

func TestConformance(t *testing.T) { kvtest.RunTests(t, openStore) }

// BenchmarkKV runs the shared benchmark shapes (kvtest.RunBenchmarks).
func BenchmarkKV(b *testing.B) { kvtest.RunBenchmarks(b, openStore) }
