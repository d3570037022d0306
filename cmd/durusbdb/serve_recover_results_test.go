package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/leveldb"
	"github.com/durusbdb/durusbdb/service"
)

// TestServeResultSiteRemoved: a site removed from its replication group
// exits 0 (a supervisor restarting on failure would make it rejoin) and
// says that a restart on its directory rejoins; a storage failure stays an
// error, a bad Config a usage error.
func TestServeResultSiteRemoved(t *testing.T) {
	var stderr bytes.Buffer
	cio := cmdIO{stderr: &stderr}
	removed := fmt.Errorf("serve /d: %w: %w", engine.ErrFailed, fmt.Errorf("engine: /d: %w", engine.ErrSiteRemoved))
	if err := serveResult(cio, removed); err != nil {
		t.Fatalf("removed site: %v, want exit 0", err)
	}
	if s := stderr.String(); !strings.Contains(s, "would rejoin") || !strings.Contains(s, "empty or destroy the directory") {
		t.Errorf("removed site's message: %q", s)
	}
	failed := fmt.Errorf("serve /d: %w", engine.ErrFailed)
	if err := serveResult(cio, failed); !errors.Is(err, engine.ErrFailed) {
		t.Errorf("storage failure: %v", err)
	}
	var ue *usageError
	if err := serveResult(cio, &service.ConfigError{Msg: "bad"}); !errors.As(err, &ue) {
		t.Errorf("config error: %v, want a usage error", err)
	}
}

// TestRecoverFinishesInterruptedRepair: `recover` without --force on a
// LevelDB directory whose repair was interrupted finishes it (the
// directory verifies, but every open refuses it until then).
func TestRecoverFinishesInterruptedRepair(t *testing.T) {
	dir := newDB(t, "leveldb")
	if err := os.WriteFile(filepath.Join(dir, leveldb.RepairJournalName), []byte("killed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI(t, nil, "recover", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "interrupted: finishing it") || leveldb.RepairInterrupted(dir) {
		t.Fatalf("recover of an interrupted repair: exit %d, %q %q; journal left: %v", code, out, stderr, leveldb.RepairInterrupted(dir))
	}
}
