//go:build bdb

package bdb_test

import (
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

func openStore(t testing.TB, opts kv.Options) kv.Store {
	t.Helper()
	s, err := bdb.OpenStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestConformance runs the kv conformance suite against the bdb backend.
func TestConformance(t *testing.T) {
	kvtest.RunTests(t, openStore)
}
