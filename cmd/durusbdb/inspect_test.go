package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/inspect"
)

// classData is a record's pickles as Durus writes them: the class pickle
// (protocol 2, GLOBAL module\nname\n) then the state.
func classData(module, class string, state int) []byte {
	return []byte(fmt.Sprintf("\x80\x02c%s\n%s\nq\x01.\x80\x02}q\x02%s.", module, class, strings.Repeat("s", state)))
}

// inspectDB migrates a small Shelf file into a new database: root 0 → 1,
// 2; 1 → 3; 2 → 3; classes app.Page (1, 2: 2 objects), app.Blob (3, large),
// and the root of class durus.persistent_dict.PersistentDict.
func inspectDB(t *testing.T) (dir string, recs map[uint64][]byte) {
	t.Helper()
	recs = map[uint64][]byte{
		0: record.Build(0, classData("durus.persistent_dict", "PersistentDict", 10), 1, 2),
		1: record.Build(1, classData("app", "Page", 100), 3),
		2: record.Build(2, classData("app", "Page", 120), 3),
		3: record.Build(3, classData("app", "Blob", 5000)),
	}
	src := filepath.Join(t.TempDir(), "app.durus")
	_, err := filestorage.WriteShelf(src, filestorage.WriteOptions{}, func(yield func(uint64, []byte) error) error {
		for oid := uint64(0); oid < 4; oid++ {
			if err := yield(oid, recs[oid]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, nil, "migrate", "--dir", dir, "--create", "--backend", "leveldb", src); code != exitOK {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	return dir, recs
}

func TestAnalyze(t *testing.T) {
	dir, recs := inspectDB(t)
	code, out, stderr := runCLI(t, nil, "analyze", "--dir", dir, "--json", "--top", "2")
	if code != exitOK {
		t.Fatalf("analyze: exit %d: %s", code, stderr)
	}
	var a inspect.Analysis
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range recs {
		total += int64(len(r))
	}
	if a.Objects != 4 || a.Bytes != total || len(a.Classes) != 3 {
		t.Fatalf("analysis %+v: want 4 objects, %d bytes, 3 classes", a, total)
	}
	if c := a.Classes[0]; c.Class != "app.Blob" || c.Objects != 1 || c.Largest != 3 {
		t.Fatalf("first class %+v: want app.Blob, 1 object, largest oid 3", c)
	}
	if c := a.Classes[1]; c.Class != "app.Page" || c.Objects != 2 || c.Bytes != int64(len(recs[1])+len(recs[2])) || c.Largest != 2 {
		t.Fatalf("second class %+v: want app.Page, 2 objects, largest oid 2", c)
	}
	if len(a.Largest) != 2 || a.Largest[0].OID != 3 || a.Largest[1].OID != 2 {
		t.Fatalf("largest %+v: want oids 3, 2", a.Largest)
	}
	code, out, _ = runCLI(t, nil, "analyze", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "app.Page") || !strings.Contains(out, "total") {
		t.Fatalf("analyze table: exit %d\n%s", code, out)
	}
}

func TestRefs(t *testing.T) {
	dir, _ := inspectDB(t)
	code, out, stderr := runCLI(t, nil, "refs", "--dir", dir, "--json", "3")
	if code != exitOK {
		t.Fatalf("refs: exit %d: %s", code, stderr)
	}
	var r inspect.Refs
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Exists || r.Class != "app.Blob" || len(r.Refs) != 0 || fmt.Sprint(r.ReferredBy) != "[1 2]" {
		t.Fatalf("refs 3: %+v: want app.Blob referred to by [1 2]", r)
	}
	code, out, _ = runCLI(t, nil, "refs", "--dir", dir, "0")
	if code != exitOK || !strings.Contains(out, "refers to: 1 2") || !strings.Contains(out, "referred to by: (none)") {
		t.Fatalf("refs 0: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, nil, "refs", "--dir", dir, "99")
	if code != exitOK || !strings.Contains(out, "oid 99: no record") {
		t.Fatalf("refs 99: exit %d\n%s", code, out)
	}
}

func TestDump(t *testing.T) {
	dir, recs := inspectDB(t)
	code, out, stderr := runCLI(t, nil, "dump", "--dir", dir, "--raw", "1")
	if code != exitOK || !bytes.Equal([]byte(out), recs[1]) {
		t.Fatalf("dump --raw 1: exit %d (%s): %q, want the record bytes", code, stderr, out)
	}
	code, out, _ = runCLI(t, nil, "dump", "--dir", dir, "1")
	if code != exitOK || !strings.Contains(out, "app.Page") || !strings.Contains(out, "references: 3") {
		t.Fatalf("dump 1: exit %d\n%s", code, out)
	}
	code, _, stderr = runCLI(t, nil, "dump", "--dir", dir, "42")
	if code != exitFailed || !strings.Contains(stderr, "oid 42 has no record") {
		t.Fatalf("dump 42: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "dump", "--dir", dir, "x1")
	if code != exitUsage || !strings.Contains(stderr, "not a number") {
		t.Fatalf("dump x1: exit %d: %s", code, stderr)
	}
}
