package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
)

// A file inside the database directory is never the source of a migrate
// (--force swaps the directory out and removes it, with the source) nor
// the output of an export (--force would overwrite a database file): both
// are refused as usage errors before anything is read or written, the
// file and the database left as they were. An existing output without
// --force is refused naming --force, before any progress.
func TestToolsRefusePathsInsideTheDatabase(t *testing.T) {
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			dir := newDB(t, kind)
			src := filepath.Join(dir, "app.durus")
			if code, _, stderr := runCLI(t, nil, "export", "--dir", dir, filepath.Join(t.TempDir(), "app.durus")); code != exitOK {
				t.Fatalf("export: exit %d: %s", code, stderr)
			}
			data, err := os.ReadFile(chainFile(t, 10))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(src, data, 0o644); err != nil {
				t.Fatal(err)
			}
			// Named through "..", so that a plain prefix test would miss it.
			via := filepath.Join(dir, "..", filepath.Base(dir), "app.durus")
			code, _, stderr := runCLI(t, nil, "migrate", "--dir", dir, "--force", via)
			if code != exitUsage || !strings.Contains(stderr, "inside the database directory") {
				t.Fatalf("migrate --force from a file inside DIR: exit %d: %s", code, stderr)
			}
			if _, err := os.Stat(src); err != nil {
				t.Fatalf("the source is gone: %v", err)
			}
			if err := os.Remove(src); err != nil {
				t.Fatal(err)
			}
			victim := filepath.Join(dir, "meta.db")
			if kind == backend.LevelDB {
				victim = filepath.Join(dir, "CURRENT")
			}
			before, err := os.ReadFile(victim)
			if err != nil {
				t.Fatal(err)
			}
			code, _, stderr = runCLI(t, nil, "export", "--dir", dir, "--force", victim)
			if code != exitUsage || !strings.Contains(stderr, "must not be inside the database directory") {
				t.Fatalf("export --force onto %s: exit %d: %s", victim, code, stderr)
			}
			if after, _ := os.ReadFile(victim); string(after) != string(before) {
				t.Fatalf("export changed %s", victim)
			}
			if code, out, stderr := runCLI(t, nil, "check", "--dir", dir); code != exitOK {
				t.Fatalf("check after the refusals: exit %d\n%s%s", code, out, stderr)
			}
			out := filepath.Join(t.TempDir(), "exists.durus")
			if err := os.WriteFile(out, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr = runCLI(t, nil, "export", "--dir", dir, out)
			if code != exitFailed || !strings.Contains(stderr, "--force") || strings.Contains(stderr, "records") {
				t.Fatalf("export to an existing file: exit %d, want the refusal naming --force and no progress: %s", code, stderr)
			}
		})
	}
}

// A flag of one backend's tool is refused on the other's directory rather
// than ignored: recover --catastrophic and checkpoint --keep-logs on
// LevelDB (and recover --discard-damaged-log), recover --force (a LevelDB
// repair) on Berkeley DB.
func TestBackendFlagsRefusedOnTheOtherBackend(t *testing.T) {
	cases := map[string][][]string{
		backend.LevelDB: {{"recover", "--catastrophic"}, {"checkpoint", "--keep-logs"}, {"recover", "--discard-damaged-log"}},
		backend.BDB:     {{"recover", "--force"}},
	}
	for _, kind := range backend.Compiled() {
		dir := newDB(t, kind)
		for _, args := range cases[kind] {
			code, _, stderr := runCLI(t, nil, append(args, "--dir", dir)...)
			if code != exitUsage || !strings.Contains(stderr, args[1]) || !strings.Contains(stderr, dir) {
				t.Errorf("%v on a %s directory: exit %d, want a usage error naming the flag and the directory: %s", args, kind, code, stderr)
			}
		}
		if code, out, stderr := runCLI(t, nil, "check", "--dir", dir); code != exitOK {
			t.Errorf("check after the refusals: exit %d\n%s%s", code, out, stderr)
		}
	}
}
