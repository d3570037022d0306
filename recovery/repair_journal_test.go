package recovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/leveldb"
)

// TestInterruptedRepairRefused: a LevelDB repair killed part way
// (leveldb::RepairDB archives the logs it converted before it writes the
// MANIFEST naming their tables) left a directory that opened without its
// last commits, and check said ok. The repair's journal makes every open
// refuse it, naming `recover --force`; a complete repair removes the
// journal and keeps every record.
func TestInterruptedRepairRefused(t *testing.T) {
	dir := t.TempDir()
	want := fill(t, dir, backend.LevelDB, 50)
	// As a repair killed after it wrote its journal.
	if err := os.WriteFile(filepath.Join(dir, leveldb.RepairJournalName), []byte("killed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := engineOpts(backend.LevelDB)
	o.Create = false
	for _, ro := range []bool{false, true} {
		o.ReadOnly = ro
		db, err := engine.Open(context.Background(), dir, o)
		if err == nil {
			db.Close()
			t.Fatalf("opened (read-only %v) a directory whose repair was interrupted", ro)
		}
		if !errors.Is(err, leveldb.ErrRepairInterrupted) || !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), "recover --dir "+dir+" --force") {
			t.Fatalf("open (read-only %v): %v; want ErrRepairInterrupted naming recover --force", ro, err)
		}
	}
	if !leveldb.RepairInterrupted(dir) {
		t.Fatal("RepairInterrupted is false with the journal present")
	}
	r, err := Recover(context.Background(), dir, RecoverOptions{Options: quietOpts()})
	if err != nil || r.Kind != KindRepair {
		t.Fatalf("repair: %+v %v", r, err)
	}
	if leveldb.RepairInterrupted(dir) {
		t.Fatal("the journal stays after a complete repair")
	}
	verifyDB(t, dir, want)
}
