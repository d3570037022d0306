//go:build bdb

package recovery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
)

// TestReadFormatsUnwrittenLastLog: a kill -9 while libdb switches to a new
// log file leaves the last log file created with its header unwritten
// (seen in the crash harness's churn rounds); the restart must leave it to
// libdb's recovery instead of refusing the directory. A zero-filled log
// below every written one is a file written ahead that libdb passed by
// (left by releases before the prezeroer's look after its link), which
// libdb's recovery skips too. A zero-filled log between written ones, or a
// last one with other bytes, is damage.
func TestReadFormatsUnwrittenLastLog(t *testing.T) {
	for _, size := range []int{0, 17, 4096} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "log.0000000001"), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readFormats(dir); err != nil {
			t.Errorf("%d zero bytes in the last log: %v", size, err)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "log.0000000001"), make([]byte, 64), 0o644)
	os.WriteFile(filepath.Join(dir, "log.0000000002"), []byte("not a log, not zeros"), 0o644)
	if _, err := readFormats(dir); !errors.Is(err, kv.ErrCorrupt) {
		t.Errorf("damaged logs: %v, want kv.ErrCorrupt", err)
	}

	// A zero file below the log's first: accepted; between written
	// files: damage.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "log.0000000002"), make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(dir, "log.0000000005"), logHeader(), 0o644)
	os.WriteFile(filepath.Join(dir, "log.0000000006"), logHeader(), 0o644)
	if f, err := readFormats(dir); err != nil || len(f) != 2 {
		t.Errorf("a zero log below the first written one: %v %v, want the 2 written ones", f, err)
	}
	os.WriteFile(filepath.Join(dir, "log.0000000007"), logHeader(), 0o644)
	os.WriteFile(filepath.Join(dir, "log.0000000006"), make([]byte, 4096), 0o644)
	if _, err := readFormats(dir); !errors.Is(err, kv.ErrCorrupt) {
		t.Errorf("a zero log between written ones: %v, want kv.ErrCorrupt", err)
	}
}

// logHeader is the start of a log file of this release: the record header
// (12 bytes here) and the persistent header's magic and version.
func logHeader() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[12:], libdb.LogMagic)
	binary.LittleEndian.PutUint32(b[16:], libdb.LogVersion)
	return b
}

// TestVerifyBackendLogFiles: check's backend verification reads the log
// files' headers as serve's open does (CheckFormat), so a directory that
// serve refuses never passes check: a log file with no log magic between
// written ones is corruption naming the file, a log of an older release
// asks for `durusbdb upgrade`.
func TestVerifyBackendLogFiles(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := engine.Open(ctx, dir, engine.Options{Create: true, Backend: backend.BDB, GC: engine.GCPolicy{Mode: engine.GCManual}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBackend(dir); err != nil {
		t.Fatalf("clean database: %v", err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	if len(logs) == 0 {
		t.Fatal("no log file")
	}
	first := logs[0]
	good, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	// A written log after the first, so that a damaged first is not
	// taken for a file written ahead and never used.
	next := filepath.Join(dir, fmt.Sprintf("log.%010d", bdb.LogNumber(filepath.Base(logs[len(logs)-1]))+1))
	if err := os.WriteFile(next, logHeader(), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(next)

	bad := append([]byte(nil), good...)
	copy(bad, "not a Berkeley DB log header, not zeros either; damage.")
	os.WriteFile(first, bad, 0o644)
	if _, err := VerifyBackend(dir); !errors.Is(err, kv.ErrCorrupt) || !containsPath(err, filepath.Base(first)) {
		t.Errorf("damaged log header: %v, want kv.ErrCorrupt naming %s", err, filepath.Base(first))
	}

	old := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(old[16:], libdb.LogVersion-1)
	os.WriteFile(first, old, 0o644)
	if _, err := VerifyBackend(dir); !errors.Is(err, ErrNeedsUpgrade) {
		t.Errorf("log of an older release: %v, want ErrNeedsUpgrade", err)
	}
}
