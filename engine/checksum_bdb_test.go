//go:build bdb

package engine

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testlog"
	"github.com/durusbdb/durusbdb/internal/testwait"
	"github.com/durusbdb/durusbdb/kv"
)

// A Berkeley DB page damaged on disk is refused when a load reads it (page
// checksums), never served; the engine enters its fatal state (libdb has
// panicked the environment), and the log says that a restart will not
// mend it and what will, rather than "restart so that recovery runs".
func TestDamagedPageStopsWithAdvice(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(backend.BDB)
	db := openTest(t, dir, opts)
	const n = 2000
	first := mustAlloc(t, db, n)
	marker := []byte("a damaged page must not be served ")
	recs := make([][]byte, 0, n)
	for i := range uint64(n) {
		recs = append(recs, record.Build(first+i, bytes.Repeat(marker, 4)))
	}
	mustCommit(t, db, recs...)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "objects.db")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(data[len(data)/2:], marker) + len(data)/2
	if off < len(data)/2 {
		t.Fatalf("no record bytes in the second half of %s", file)
	}
	data[off] ^= 0x5a
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs testlog.Buffer
	opts.Create = false
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	db = openTest(t, dir, opts)
	var loadErr error
	for i := range uint64(n) {
		rec, err := db.Load(first + i)
		if err != nil {
			loadErr = err
			break
		}
		if !bytes.Equal(rec, recs[i]) {
			t.Fatalf("oid %d served damaged: %q", first+i, rec)
		}
	}
	if !errors.Is(loadErr, kv.ErrCorrupt) || !strings.Contains(loadErr.Error(), "objects.db") ||
		!strings.Contains(loadErr.Error(), "checksum error: page") {
		t.Fatalf("loading every record of a file with a damaged page: %v; want kv.ErrCorrupt naming objects.db and the page", loadErr)
	}
	select {
	case <-db.Failed():
	case <-time.After(testwait.Timeout):
		t.Fatal("a panicked environment did not fail the engine")
	}
	l := logs.String()
	if !strings.Contains(l, "damaged on disk") || !strings.Contains(l, "a restart will not mend it") ||
		strings.Contains(l, "restart so that recovery runs") {
		t.Fatalf("the log does not say the file is damaged and a restart will not mend it:\n%s", l)
	}
}

// Options.NoPageChecksums creates the files without page checksums (for a
// read-heavy database bigger than its cache: each page read from disk
// then skips the check); by default they have them. The choice is made at
// creation: a later open with the other setting keeps what is there.
func TestNoPageChecksumsOption(t *testing.T) {
	for _, no := range []bool{false, true} {
		dir := t.TempDir()
		opts := testOpts(backend.BDB)
		opts.NoPageChecksums = no
		db := openTest(t, dir, opts)
		mustAlloc(t, db, 2)
		mustCommit(t, db, rec(0, 1), rec(1))
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		opts.Create, opts.NoPageChecksums = false, !no
		db = openTest(t, dir, opts)
		if _, err := db.Load(1); err != nil {
			t.Fatal(err)
		}
		db.Close()
		for _, f := range []string{"meta.db", "objects.db", "refcounts.db", "garbage.db"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if has := b[26]&0x01 != 0; has == no {
				t.Errorf("NoPageChecksums %v: %s has checksums %v", no, f, has)
			}
		}
	}
}
