//go:build bdb

package bdb_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

// logName is the name of log file n.
func logName(n int) string { return fmt.Sprintf("log.%010d", n) }

// allZero reports whether the file at path is size bytes of zeros.
func allZero(t *testing.T, path string, size int64) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b)) == size && bytes.Count(b, []byte{0}) == len(b)
}

// putBig commits n 64 KiB records numbered from first, durably.
func putBig(t *testing.T, s *bdb.Store, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		err := kv.Update(context.Background(), s, kv.Sync, func(tx kv.Txn) error {
			return tx.Put("objects", oidKey(uint64(i)), append(record(uint64(i)), make([]byte, 64<<10)...))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrezeroLogs: the next log file is written with zeros ahead (a whole
// log file's size), libdb switches into it (its header then valid, the
// records in it readable after a reopen), and the one after is written
// ahead in turn; libdb's own tools read the directory.
func TestPrezeroLogs(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	st, err := s.Env().Stats()
	if err != nil {
		t.Fatal(err)
	}
	size := int64(st.Log.FileSize)
	testwait.Within(t, 30*time.Second, logName(2)+" written ahead", func() bool { return s.Env().LogsWrittenAhead() >= 1 })
	if !allZero(t, filepath.Join(dir, logName(2)), size) {
		t.Fatalf("%s is not %d zero bytes", logName(2), size)
	}
	putBig(t, s, 0, 200) // 13 MB of log: into file 2
	if st, _ := s.Env().Stats(); st.Log.CurFile < 2 {
		t.Fatalf("libdb writes log file %d, want 2 or more", st.Log.CurFile)
	}
	if fv, err := bdb.ReadFileVersion(filepath.Join(dir, logName(2))); err != nil || fv.Kind != "log" {
		t.Fatalf("%s after libdb's switch into it: %+v %v", logName(2), fv, err)
	}
	testwait.Within(t, 30*time.Second, logName(3)+" written ahead", func() bool { return s.Env().LogsWrittenAhead() >= 2 })
	if !allZero(t, filepath.Join(dir, logName(3)), size) {
		t.Fatalf("%s is not %d zero bytes", logName(3), size)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".log.prezero")); !os.IsNotExist(err) {
		t.Fatalf("the temporary file is left after close: %v", err)
	}
	if out := tool(t, "db5.3_verify", "-h", dir, "objects.db"); !strings.Contains(out, "succeeded") && out != "" {
		t.Fatalf("db5.3_verify: %s", out)
	}
	tool(t, "db5.3_printlog", "-h", dir) // reads every log record: fails on a bad file
	s = mustOpen(t, kvtest.Options(dir))
	defer s.Close()
	checkRecords(t, s, 0, 200)
}

// TestPrezeroCrash: a process killed (-9) while the next log file sits
// written ahead with zeros; db_recover runs on the directory, the store
// reopens with every acknowledged commit, and later commits run into the
// zero file and survive another reopen.
func TestPrezeroCrash(t *testing.T) {
	dir := t.TempDir()
	last := crashAfter(t, dir, 0, 240, "BDB_CRASH_BIG=1", "BDB_CRASH_AHEAD=200")
	var zero []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := bdb.LogNumber(e.Name()); n > 0 {
			if fv, err := bdb.ReadFileVersion(filepath.Join(dir, e.Name())); err != nil {
				zero = append(zero, e.Name()+" ("+fv.Kind+")")
			}
		}
	}
	if len(zero) != 1 {
		t.Fatalf("after the kill: log files without a header %v, want the one written ahead", zero)
	}
	copyDir := t.TempDir()
	if out, err := execCopy(dir, copyDir); err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	tool(t, "db5.3_recover", "-h", copyDir) // libdb's own recovery takes it
	tool(t, "db5.3_verify", "-h", copyDir, "objects.db")
	s := mustOpen(t, kvtest.Options(dir))
	checkRecords(t, s, 0, last+1)
	putBig(t, s, last+1, 200) // through the file written ahead
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, kvtest.Options(dir))
	defer s.Close()
	checkRecords(t, s, 0, last+201)
}

// checkRecords fails unless records first … first+n-1 are there.
func checkRecords(t *testing.T, s *bdb.Store, first, n int) {
	t.Helper()
	tx, err := s.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	for i := first; i < first+n; i++ {
		v, err := tx.Get("objects", oidKey(uint64(i)))
		if err != nil || !bytes.HasPrefix(v, record(uint64(i))) {
			t.Fatalf("record %d of %d: %.40q %v", i, first+n, v, err)
		}
	}
}

// execCopy copies the files of directory src into dst (cp -a).
func execCopy(src, dst string) ([]byte, error) {
	return exec.Command("cp", "-a", src+"/.", dst).CombinedOutput()
}

// TestPrezeroStrayBelowRemoved: a directory holding a zero-filled log file
// below its first log file (written ahead, then passed by: what releases
// before the look after the link could leave when the environment closed
// first) opens, libdb's tools read it, and a writable open removes the
// file; StrayLogs names it, and not a zero file between written ones.
func TestPrezeroStrayBelowRemoved(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	putBig(t, s, 0, 200) // 13 MB of log: into file 2
	if err := s.Checkpoint(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, logName(1))); !os.IsNotExist(err) {
		t.Fatalf("%s still there after a checkpoint that removes logs: %v", logName(1), err)
	}
	os.Remove(filepath.Join(dir, logName(3))) // a file written ahead at close, if any
	if err := os.WriteFile(filepath.Join(dir, logName(1)), make([]byte, 1<<20), 0o640); err != nil {
		t.Fatal(err)
	}
	if last, below, err := bdb.StrayLogs(dir); err != nil || last != "" || len(below) != 1 || below[0] != logName(1) {
		t.Fatalf("StrayLogs = %q %q %v, want [%s] below", last, below, err, logName(1))
	}
	tool(t, "db5.3_printlog", "-h", dir)
	s = mustOpen(t, kvtest.Options(dir))
	checkRecords(t, s, 0, 200)
	if _, err := os.Stat(filepath.Join(dir, logName(1))); !os.IsNotExist(err) {
		t.Fatalf("the stray %s is still there after a writable open: %v", logName(1), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A zero file between written ones is damage: not listed.
	if err := os.WriteFile(filepath.Join(dir, logName(3)), make([]byte, 4096), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, logName(4)), []byte("written"), 0o640); err != nil {
		t.Fatal(err)
	}
	if last, below, err := bdb.StrayLogs(dir); err != nil || last != "" || len(below) != 0 {
		t.Fatalf("StrayLogs with a zero file between written ones = %q %q %v, want none", last, below, err)
	}
}
