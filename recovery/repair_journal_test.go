package recovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
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

// TestRepairDropsDamagedLogRecords: leveldb::RepairDB replays logs
// without their checksums, and a QA round's repair of a log with flipped
// bytes brought the root record back with the damage in it (every client
// failed to unpickle it; check said ok). The repair now drops the commit
// whose log record fails its checksum, says so, and keeps every other
// commit: the damaged object reads as it was before that commit.
func TestRepairDropsDamagedLogRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := fill(t, dir, backend.LevelDB, 20)
	db, err := engine.Open(ctx, dir, engineOpts(backend.LevelDB))
	if err != nil {
		t.Fatal(err)
	}
	updated := map[uint64][]byte{}
	for _, oid := range []uint64{3, 7, 11} { // one commit each
		r := record.Build(oid, bytes.Repeat([]byte(fmt.Sprintf("update of %d|", oid)), 30))
		p, err := db.Stage(ctx, [][]byte{r})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		updated[oid] = r
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	damagedIn := ""
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("update of 7|")); i >= 0 {
			for j := i + 100; j < i+104; j++ {
				b[j] ^= 0xff
			}
			if err := os.WriteFile(l, b, 0o640); err != nil {
				t.Fatal(err)
			}
			damagedIn = filepath.Base(l)
		}
	}
	if damagedIn == "" {
		t.Fatal("the update of oid 7 is in no log file")
	}
	r, err := Recover(ctx, dir, RecoverOptions{Options: quietOpts()})
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	if !strings.Contains(strings.Join(r.Messages, "\n"), "log "+damagedIn+": damaged records") {
		t.Fatalf("the repair's report does not name the damaged log %s: %q", damagedIn, r.Messages)
	}
	want[3], want[11] = updated[3], updated[11] // want[7]: as fill wrote it
	verifyDB(t, dir, want)
}

// TestMissingLiveLogRefused: LevelDB's open replays the logs it finds from
// the MANIFEST's log number on and says nothing of the one it names that
// is gone: the commits it held were lost without a word (QA: the next
// check said the database was never initialised). Every open and check
// now name the missing log; a repair (recover) accepts the loss, and its
// MANIFEST, naming no log, opens.
func TestMissingLiveLogRefused(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, backend.LevelDB, 50)
	logs, _ := filepath.Glob(filepath.Join(dir, "[0-9]*.log"))
	if len(logs) == 0 {
		t.Fatal("no LevelDB log file")
	}
	for _, l := range logs {
		if err := os.Remove(l); err != nil {
			t.Fatal(err)
		}
	}
	o := engineOpts(backend.LevelDB)
	o.Create = false
	if db, err := engine.Open(context.Background(), dir, o); err == nil {
		db.Close()
		t.Fatal("opened a LevelDB directory without the log its MANIFEST names")
	} else if !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(logs[len(logs)-1])) {
		t.Fatalf("open without the live log: %v, want kv.ErrCorrupt naming %s", err, filepath.Base(logs[len(logs)-1]))
	}
	if _, err := VerifyBackend(dir); !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("check without the live log: %v", err)
	}
	if _, err := Recover(context.Background(), dir, RecoverOptions{Options: quietOpts()}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyBackend(dir); err != nil {
		t.Fatalf("check after the repair: %v", err)
	}
}

// TestMissingTableRefused: LevelDB opened a directory whose MANIFEST
// lists a table file that is gone, failing only the reads that reach it
// (QA); every open and check now name the table.
func TestMissingTableRefused(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, backend.LevelDB, 50)
	o := engineOpts(backend.LevelDB)
	o.Create = false
	db, err := engine.Open(context.Background(), dir, o) // replays the log into a table
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	tables, _ := filepath.Glob(filepath.Join(dir, "*.ldb"))
	if len(tables) == 0 {
		t.Fatal("no table file after a reopen")
	}
	if err := os.Remove(tables[0]); err != nil {
		t.Fatal(err)
	}
	if db, err := engine.Open(context.Background(), dir, o); err == nil {
		db.Close()
		t.Fatal("opened a LevelDB directory without a table its MANIFEST lists")
	} else if !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(tables[0])) {
		t.Fatalf("open without %s: %v, want kv.ErrCorrupt naming it", filepath.Base(tables[0]), err)
	}
	if _, err := VerifyBackend(dir); !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(tables[0])) {
		t.Fatalf("check without %s: %v", filepath.Base(tables[0]), err)
	}
}
