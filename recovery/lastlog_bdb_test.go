//go:build bdb

package recovery

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestReadFormatsUnwrittenLastLog: a kill -9 while libdb switches to a new
// log file leaves the last log file created with its header unwritten
// (seen in the crash harness's churn rounds); the restart must leave it to
// libdb's recovery instead of refusing the directory. A zero-filled log
// that is not the last one, or a last one with other bytes, is damage.
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
}
