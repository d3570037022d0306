package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
)

// runCLIInput is runCLI with stdin.
func runCLIInput(t *testing.T, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), cmdIO{stdin: bytes.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

// damagedSources returns migrate sources that fail in the middle of the
// import: a 1000-record Shelf file with a record damaged a third of the
// way in, and a --stdin record stream (with its input) cut inside its
// 600th record.
func damagedSources(t *testing.T) map[string]struct {
	args  []string
	stdin []byte
} {
	t.Helper()
	b, err := os.ReadFile(chainFile(t, 1000))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "corrupt.durus")
	copy(b[len(b)/3:], bytes.Repeat([]byte{0xff}, 32))
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for oid := range uint64(600) {
		recs = append(recs, chainRecord(oid, 1000))
	}
	stream := frames(recs...)
	return map[string]struct {
		args  []string
		stdin []byte
	}{
		"corrupt":   {args: []string{corrupt}},
		"truncated": {args: []string{"--stdin"}, stdin: stream[:len(stream)-5]},
	}
}

// checkObjects runs check --json on dir and returns the objects counted;
// the check must pass.
func checkObjects(t *testing.T, dir string) uint64 {
	t.Helper()
	code, out, stderr := runCLI(t, nil, "check", "--dir", dir, "--json")
	var rep checkJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || !rep.OK {
		t.Fatalf("check %s: exit %d %v: %s%s", dir, code, err, out, stderr)
	}
	return rep.Objects
}

// besides lists the entries beside dir named .BASE.* (staging directories,
// directories moved aside).
func besides(t *testing.T, dir string) []string {
	t.Helper()
	l, err := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".*"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A failed migrate --force over an existing database leaves it as it was
// (not emptied, not marked incomplete), for a damaged and a truncated
// source; a successful one replaces the contents, keeps the directory's
// mode and the operator's files beside the database, and leaves nothing
// beside the directory.
func TestForcedMigrateReplacesOnlyOnSuccess(t *testing.T) {
	srcs := damagedSources(t)
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			dir := newDB(t, kind)
			if err := os.Chmod(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "server.log.txt"), []byte("log\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for name, src := range srcs {
				code, _, stderr := runCLIInput(t, src.stdin, append([]string{"migrate", "--dir", dir, "--force"}, src.args...)...)
				if code != exitFailed || !strings.Contains(stderr, "left as it was") {
					t.Fatalf("migrate --force of the %s source: exit %d: %s", name, code, stderr)
				}
				if n := checkObjects(t, dir); n != 100 {
					t.Fatalf("after a failed migrate --force of the %s source: %d objects, want the 100 of before", name, n)
				}
				if l := besides(t, dir); len(l) != 0 {
					t.Fatalf("left beside the database after the %s source: %v", name, l)
				}
			}
			if code, out, stderr := runCLI(t, nil, "migrate", "--dir", dir, "--force", chainFile(t, 40)); code != exitOK {
				t.Fatalf("migrate --force: exit %d: %s%s", code, out, stderr)
			}
			if n := checkObjects(t, dir); n != 40 {
				t.Fatalf("after migrate --force of 40 records: %d objects", n)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o750 {
				t.Errorf("the directory's mode after migrate --force: %v %v, want 0750", fi.Mode(), err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "server.log.txt")); err != nil || string(b) != "log\n" {
				t.Errorf("the text log beside the database: %q %v", b, err)
			}
			if l := besides(t, dir); len(l) != 0 {
				t.Errorf("left beside the database after migrate --force: %v", l)
			}
		})
	}
}

// The staging directory of a killed migrate (no process holds its lock)
// is removed by the next migrate, and a database an interrupted --force
// moved aside is reported with the command that removes it, not removed.
func TestMigrateRemovesStaleStaging(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "db")
	stale := filepath.Join(parent, ".db.migrate-123")
	aside := filepath.Join(parent, ".db.replaced-456")
	for _, d := range []string{filepath.Join(stale, "db"), aside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "objects.db"), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runCLI(t, nil, "migrate", "--dir", dir, "--create", chainFile(t, 10))
	if code != exitOK {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale staging directory is still there: %v", err)
	}
	if !strings.Contains(stderr, "rm -rf "+aside) {
		t.Errorf("no warning naming %s and how to remove it:\n%s", aside, stderr)
	}
	if _, err := os.Stat(aside); err != nil {
		t.Errorf("the database moved aside was removed: %v", err)
	}
	if n := checkObjects(t, dir); n != 10 {
		t.Errorf("%d objects, want 10", n)
	}
}

// migrate --force through a symlinked DIR replaces the directory the link
// names; the link stays a link.
func TestForcedMigrateThroughSymlink(t *testing.T) {
	dir := newDB(t, backend.Default())
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI(t, nil, "migrate", "--dir", link, "--force", chainFile(t, 7)); code != exitOK {
		t.Fatalf("migrate --force: exit %d: %s%s", code, out, stderr)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link after migrate --force: %v %v", fi.Mode(), err)
	}
	if n := checkObjects(t, dir); n != 7 {
		t.Fatalf("%d objects in the directory the link names, want 7", n)
	}
	if l := append(besides(t, dir), besides(t, link)...); len(l) != 0 {
		t.Errorf("left beside: %v", l)
	}
}
