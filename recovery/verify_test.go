package recovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
)

// TestVerifyBackend: a clean database verifies; damaging a database file's
// header makes VerifyBackend fail naming the file (kv.ErrCorrupt).
func TestVerifyBackend(t *testing.T) {
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			db, err := engine.Open(ctx, dir, engine.Options{Create: true, Backend: kind, GC: engine.GCPolicy{Mode: engine.GCManual}})
			if err != nil {
				t.Fatal(err)
			}
			p, err := db.Stage(ctx, [][]byte{record.Build(0, []byte("root"))})
			if err == nil {
				err = p.Wait(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if n, err := VerifyBackend(dir); err != nil || n == 0 {
				t.Fatalf("clean database: %d files, %v", n, err)
			}
			if off, err := PageChecksumsOff(dir); err != nil || len(off) != 0 {
				t.Fatalf("a new database has files without page checksums: %v, %v", off, err)
			}
			victim := filepath.Join(dir, "refcounts.db")
			if kind == backend.LevelDB {
				tables, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
				if len(tables) == 0 {
					t.Fatal("no LevelDB MANIFEST to damage")
				}
				victim = tables[0]
			}
			f, err := os.OpenFile(victim, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Flip bytes inside the first record's payload (past any
			// header), so a checksum fails while the length fields stay.
			f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, 12)
			f.Close()
			_, err = VerifyBackend(dir)
			if !errors.Is(err, kv.ErrCorrupt) || !containsPath(err, filepath.Base(victim)) {
				t.Fatalf("damaged %s: %v", victim, err)
			}
		})
	}
}

func containsPath(err error, name string) bool {
	return err != nil && strings.Contains(err.Error(), name)
}
