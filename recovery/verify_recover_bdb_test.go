//go:build bdb

package recovery

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/engine"
)

// TestVerifyRecoversFirst: the backend verification of a Berkeley DB
// directory its last writer did not close (here: a copy taken while it
// was open, as a crash leaves it) runs recovery first, as a read-only open
// does: unrecovered files lag the log and verified as damaged after a
// kill -9 (kv.ErrCorrupt, which sent the operator to a backup).
func TestVerifyRecoversFirst(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, backend.BDB, 20)
	db, err := engine.Open(context.Background(), dir, engineOpts(backend.BDB))
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed")
	if out, err := exec.Command("cp", "-a", dir, crashed).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	db.Close()
	if need, err := bdb.NeedsRecovery(crashed); err != nil || !need {
		t.Fatalf("the copy of an open directory needs no recovery? %v %v", need, err)
	}
	if _, err := VerifyBackend(crashed); err != nil {
		t.Fatalf("verify of an unrecovered directory: %v", err)
	}
	if need, err := bdb.NeedsRecovery(crashed); err != nil || need {
		t.Fatalf("verified without recovering first: needs recovery %v, %v", need, err)
	}
}
