package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/durus/record"
)

// chainFile writes a Shelf file of n records, each referring to the next,
// and returns its path.
func chainFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chain.durus")
	_, err := filestorage.WriteShelf(path, filestorage.WriteOptions{}, func(yield func(uint64, []byte) error) error {
		for oid := uint64(0); oid < uint64(n); oid++ {
			if err := yield(oid, chainRecord(oid, n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// chainRecord is the record of oid in chainFile(t, n).
func chainRecord(oid uint64, n int) []byte {
	var refs []uint64
	if oid+1 < uint64(n) {
		refs = append(refs, oid+1)
	}
	return record.Build(oid, []byte(fmt.Sprintf("object %d of the chain", oid)), refs...)
}

// newDB migrates a small database of the given backend into a new
// directory and returns it.
func newDB(t *testing.T, kind string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "db")
	if code, _, stderr := runCLI(t, nil, "migrate", "--dir", dir, "--create", "--backend", kind, chainFile(t, 100)); code != exitOK {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	return dir
}

// DURUSBDB_* variables apply only to the flags a command has, and the
// backend of an existing directory is detected: DURUSBDB_DIR does not
// break copy, a DURUSBDB_BACKEND naming the other backend does not break
// stats; a conflicting --backend on the command line is a usage error.
func TestEnvironmentNeverBreaks(t *testing.T) {
	kind := backend.Default()
	other := map[string]string{backend.BDB: backend.LevelDB, backend.LevelDB: backend.BDB}[kind]
	dir := newDB(t, kind)
	env := []string{"DURUSBDB_DIR=/nonexistent/durusbdb", "DURUSBDB_BACKEND=" + other}
	if code, out, stderr := runCLI(t, env, "stats", "--dir", dir); code != exitOK || !strings.Contains(out, "100") {
		t.Errorf("stats with DURUSBDB_BACKEND=%s on a %s directory: exit %d: %s", other, kind, code, stderr)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if code, _, stderr := runCLI(t, []string{"DURUSBDB_DIR=/nonexistent/durusbdb"}, "copy", dir, dst); code != exitOK {
		t.Errorf("copy with DURUSBDB_DIR set: exit %d: %s", code, stderr)
	}
	code, _, stderr := runCLI(t, nil, "stats", "--dir", dir, "--backend", other)
	if code != exitUsage || !strings.Contains(stderr, "--backend "+other) || !strings.Contains(stderr, "holds a "+kind+" database") {
		t.Errorf("stats --backend %s on a %s directory: exit %d: %s", other, kind, code, stderr)
	}
}

// A bad value from the environment or the config file is bad usage
// (exit 2) and the message says where it came from; --print-config
// validates.
func TestBadValuesNameTheirSource(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runCLI(t, []string{"DURUSBDB_CACHE_SIZE=abc"}, "stats", "--dir", dir)
	if code != exitUsage || !strings.Contains(stderr, "DURUSBDB_CACHE_SIZE=abc (environment)") {
		t.Errorf("DURUSBDB_CACHE_SIZE=abc: exit %d: %s", code, stderr)
	}
	code, _, stderr = runCLI(t, []string{"DURUSBDB_PORT=abc"}, "serve", "--dir", dir, "--print-config")
	if code != exitUsage || !strings.Contains(stderr, "DURUSBDB_PORT=abc (environment)") {
		t.Errorf("DURUSBDB_PORT=abc: exit %d: %s", code, stderr)
	}
	cfg := filepath.Join(t.TempDir(), "durusbdb.conf")
	os.WriteFile(cfg, []byte("# settings\nmax-commit = lots\n"), 0o644)
	code, _, stderr = runCLI(t, nil, "serve", "--dir", dir, "--config", cfg, "--print-config")
	if code != exitUsage || !strings.Contains(stderr, "config file "+cfg+" line 2") {
		t.Errorf("max-commit = lots in the config file: exit %d: %s", code, stderr)
	}
	os.WriteFile(cfg, []byte("port = 99999999999\n"), 0o644)
	code, _, stderr = runCLI(t, nil, "serve", "--dir", dir, "--config", cfg, "--print-config")
	if code != exitUsage || !strings.Contains(stderr, "line 1") {
		t.Errorf("a bad port in the config file: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "serve", "--dir", dir, "--print-config", "--gc-mode", "sometimes"); code != exitUsage || !strings.Contains(stderr, "--gc-mode") {
		t.Errorf("--print-config with a bad --gc-mode: exit %d: %s", code, stderr)
	}
	if code, out, _ := runCLI(t, nil, "serve", "--dir", dir, "--print-config"); code != exitOK || !strings.Contains(out, `port = "2972"  # default`) {
		t.Errorf("--print-config: exit %d:\n%s", code, out)
	}
}

// Errors name the flag that resolves them, and no message dumps a Go
// struct.
func TestErrorsNameTheFix(t *testing.T) {
	src := chainFile(t, 10)
	dir := newDB(t, backend.Default())
	if code, _, stderr := runCLI(t, nil, "migrate", "--dir", dir, src); code != exitFailed || !strings.Contains(stderr, "--force") {
		t.Errorf("migrate into a database: exit %d: %s", code, stderr)
	}
	empty := t.TempDir()
	if code, _, stderr := runCLI(t, nil, "migrate", "--dir", empty, src); code != exitFailed || !strings.Contains(stderr, "--create") {
		t.Errorf("migrate into an empty directory without --create: exit %d: %s", code, stderr)
	}
	damaged := filepath.Join(t.TempDir(), "tail.durus")
	b, _ := os.ReadFile(src)
	os.WriteFile(damaged, b[:len(b)-10], 0o644)
	if code, _, stderr := runCLI(t, nil, "migrate", "--dir", t.TempDir(), "--create", damaged); code != exitFailed || !strings.Contains(stderr, "--ignore-incomplete-tail") {
		t.Errorf("migrate of a truncated file: exit %d: %s", code, stderr)
	}
	dangling := filepath.Join(t.TempDir(), "dangling.durus")
	filestorage.WriteShelf(dangling, filestorage.WriteOptions{}, func(yield func(uint64, []byte) error) error {
		return yield(0, record.Build(0, []byte("root"), 7))
	})
	code, out, stderr := runCLI(t, nil, "migrate", "--dir", t.TempDir(), "--create", dangling)
	if code != exitOK || !strings.Contains(out, "oid 0 refers to missing oid 7") || strings.ContainsAny(out, "{}") {
		t.Errorf("dangling references: exit %d: %s%s", code, out, stderr)
	}
}

// --create creates a missing directory.
func TestCreateMakesTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "db")
	if code, _, stderr := runCLI(t, nil, "migrate", chainFile(t, 3), "--dir", dir, "--create"); code != exitOK {
		t.Fatalf("migrate --create into a missing directory: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "check", "--dir", dir); code != exitOK {
		t.Fatalf("check: exit %d: %s", code, stderr)
	}
}

// A failed migrate leaves the directory as it was: missing, or empty.
func TestFailedMigrateLeavesDirectory(t *testing.T) {
	src := chainFile(t, 1000)
	b, _ := os.ReadFile(src)
	copy(b[len(b)/3:], bytes.Repeat([]byte{0xff}, 32)) // a record in the middle
	corrupt := filepath.Join(t.TempDir(), "corrupt.durus")
	os.WriteFile(corrupt, b, 0o644)
	parent := t.TempDir()
	missing := filepath.Join(parent, "missing")
	empty := filepath.Join(parent, "empty")
	os.Mkdir(empty, 0o755)
	for _, dir := range []string{missing, empty} {
		code, _, stderr := runCLI(t, nil, "migrate", "--dir", dir, "--create", corrupt)
		if code != exitFailed || !strings.Contains(stderr, "damaged") {
			t.Fatalf("migrate of a damaged file into %s: exit %d: %s", dir, code, stderr)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the missing directory exists after a failed migrate: %v", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("the empty directory holds %d entries after a failed migrate", len(ents))
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("staging directories left beside the target: %v", ents)
	}
	if code, _, _ := runCLI(t, nil, "check", "--dir", empty); code == exitOK {
		t.Error("check accepts the directory of a failed migrate as a database")
	}
}

// recover on a healthy LevelDB database changes no file.
func TestRecoverHealthyLevelDB(t *testing.T) {
	dir := newDB(t, backend.LevelDB)
	snapshot := func() map[string]string {
		m := map[string]string{}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			fi, _ := e.Info()
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			m[e.Name()] = fmt.Sprintf("%v %d %x", fi.ModTime().UnixNano(), fi.Size(), b)
		}
		return m
	}
	before := snapshot()
	code, out, stderr := runCLI(t, nil, "recover", "--dir", dir)
	if code != exitOK || !strings.Contains(out, "nothing changed") {
		t.Fatalf("recover: exit %d: %s%s", code, out, stderr)
	}
	after := snapshot()
	if len(after) != len(before) {
		t.Fatalf("recover changed the files: %d before, %d after", len(before), len(after))
	}
	for name, v := range before {
		if after[name] != v {
			t.Errorf("recover changed %s", name)
		}
	}
}

// check --json prints a machine report; --progress shows progress on a
// stderr that is not a terminal, counting records of the object count,
// and its final line says 100%; without it, no progress.
func TestCheckJSONAndProgress(t *testing.T) {
	dir := newDB(t, backend.Default())
	code, out, stderr := runCLI(t, nil, "check", "--dir", dir, "--json", "--progress")
	var rep checkJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !rep.OK || rep.Objects != 100 || rep.BackendFilesVerified <= 0 {
		t.Fatalf("check --json: exit %d, %+v, %v\n%s", code, rep, err, out)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "100.0%") || !strings.Contains(last, "100/100 records") {
		t.Errorf("check --progress: the final line does not say 100%% of 100 records:\n%s", stderr)
	}
	if _, _, stderr := runCLI(t, nil, "check", "--dir", dir); strings.Contains(stderr, "records") {
		t.Errorf("progress without --progress on a non-terminal stderr:\n%s", stderr)
	}
}
