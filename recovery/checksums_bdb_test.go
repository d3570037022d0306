//go:build bdb

package recovery

import (
	"slices"
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
)

// Files made without page checksums (earlier builds, the Python original)
// are listed by PageChecksumsOff, which check prints as a note.
func TestPageChecksumsOffListsOldFiles(t *testing.T) {
	dir := t.TempDir()
	env, err := bdb.OpenEnv(dir, bdb.EnvOptions{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		sum  bool
	}{{"meta.db", true}, {"objects.db", false}, {"refcounts.db", false}} {
		d, err := env.OpenDB(f.name, bdb.DBOptions{Access: bdb.Btree, Create: true, Checksum: f.sum})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	off, err := PageChecksumsOff(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"objects.db", "refcounts.db"}; !slices.Equal(off, want) {
		t.Fatalf("PageChecksumsOff = %v, want %v", off, want)
	}
}
