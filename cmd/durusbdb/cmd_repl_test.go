//go:build bdb

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/recovery"
)

// newTestDB creates a database of backend in a temporary directory.
func newTestDB(t *testing.T, backend string) (string, *engine.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := engine.Open(context.Background(), dir, engine.Options{Create: true, Backend: backend,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dir, db
}

// TestReplRefusals: repl commands refuse, with an error naming --dir, a
// LevelDB directory, a directory no server holds and (run by a server)
// a database that is not replicated; bad invocations are usage errors.
// The group itself is tested with real processes in tests/repl.
func TestReplRefusals(t *testing.T) {
	ldir, ldb := newTestDB(t, "leveldb")
	ldb.Close()
	bdir, bdb := newTestDB(t, "bdb")
	bdb.Close()
	empty := t.TempDir() // a joining site's, before its copy: not a "database of no kind"
	cases := []struct {
		name string
		args []string
		code int
		msg  []string
	}{
		{"leveldb", []string{"repl", "status", "--dir", ldir}, exitFailed, []string{"--dir " + ldir, "leveldb", "Berkeley DB"}},
		{"no server", []string{"repl", "remove-site", "127.0.0.1:1", "--dir", bdir}, exitFailed, []string{"--dir " + bdir, "no server answers"}},
		{"empty (joining)", []string{"repl", "status", "--dir", empty}, exitFailed, []string{"--dir " + empty, "no server answers", "still opening"}},
		{"no address", []string{"repl", "remove-site", "--dir", bdir}, exitUsage, []string{"HOST:PORT"}},
		{"no dir", []string{"repl", "status"}, exitUsage, []string{"--dir is required"}},
		{"no repl command", []string{"repl"}, exitUsage, []string{"status or remove-site"}},
		{"unknown repl command", []string{"repl", "frobnicate"}, exitUsage, []string{`"frobnicate"`}},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, nil, c.args...)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d; stderr %q", c.name, code, c.code, stderr)
		}
		for _, m := range c.msg {
			if !strings.Contains(stderr, m) {
				t.Errorf("%s: stderr %q lacks %q", c.name, stderr, m)
			}
		}
	}
	// Run by a server (the control socket's handler) on a standalone
	// Berkeley DB database.
	sdir, sdb := newTestDB(t, "bdb")
	for _, args := range [][]string{{"status", "--dir", sdir}, {"remove-site", "127.0.0.1:1", "--dir", sdir}} {
		var out, errb bytes.Buffer
		lv := &liveServer{db: sdb, conns: func() int { return 0 }}
		err := execute(context.WithValue(context.Background(), liveKey{}, lv),
			cmdIO{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, append([]string{"repl"}, args...))
		if err == nil || !strings.Contains(err.Error(), "--dir "+sdir) || !strings.Contains(err.Error(), "--repl-listen") {
			t.Errorf("repl %s in the server of a standalone database: %v, want an error naming --dir and --repl-listen", args[0], err)
		}
	}
}

// TestReplHelp: the repl commands have help like every other command.
func TestReplHelp(t *testing.T) {
	for _, sub := range []string{"status", "remove-site"} {
		code, out, _ := runCLI(t, nil, "repl", sub, "--help")
		if code != exitOK || !strings.Contains(out, "usage: durusbdb repl "+sub) || !strings.Contains(out, "example:") {
			t.Errorf("repl %s --help: exit %d, output %q", sub, code, out)
		}
	}
}

// TestRecoverRefusesUnfinishedSync: `durusbdb recover` of a directory
// holding libdb's internal-init marker (a replication site killed while
// it copied the databases from its master) refuses, naming the file and
// saying to rejoin the group, and changes nothing.
func TestRecoverRefusesUnfinishedSync(t *testing.T) {
	dir, db := newTestDB(t, "bdb")
	db.Close()
	marker := filepath.Join(dir, recovery.RepInitFile)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, nil, "recover", "--dir", dir)
	if code != exitFailed || !strings.Contains(stderr, marker) || !strings.Contains(stderr, "rejoin the group") {
		t.Fatalf("recover: exit %d, %q", code, stderr)
	}
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCLI(t, nil, "recover", "--dir", dir); code != exitOK {
		t.Fatalf("recover without the marker: exit %d\n%s%s", code, out, stderr)
	}
}

// TestRecoverHintOnReplicationSite: a failed `durusbdb recover` of a
// replication site's directory (libdb's __db.rep.system is there) adds
// that rejoining the group re-initializes a site killed during a sync-up;
// elsewhere the error is unchanged.
func TestRecoverHintOnReplicationSite(t *testing.T) {
	for _, site := range []bool{false, true} {
		dir, db := newTestDB(t, "bdb")
		db.Close()
		logs, _ := filepath.Glob(filepath.Join(dir, "log.*"))
		if len(logs) == 0 {
			t.Fatal("no log file")
		}
		if err := os.WriteFile(logs[len(logs)-1], bytes.Repeat([]byte{0xa5}, 64<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		if site {
			if err := os.WriteFile(filepath.Join(dir, "__db.rep.system"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, _, stderr := runCLI(t, nil, "recover", "--dir", dir)
		if code != exitFailed || strings.Contains(stderr, "rejoin the group") != site {
			t.Errorf("recover of a damaged directory (replication site: %v): exit %d, %q", site, code, stderr)
		}
	}
}
