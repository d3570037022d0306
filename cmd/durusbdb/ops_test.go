package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/engine"
)

// copy takes SRC and DST as arguments: its help lists no --dir, and a
// DURUSBDB_DIR in the environment (meant for the other commands) does not
// break it.
func TestCopyHasNoDirFlag(t *testing.T) {
	code, out, _ := runCLI(t, nil, "copy", "--help")
	if code != exitOK || strings.Contains(out, "-dir") {
		t.Errorf("copy --help: exit %d, lists --dir:\n%s", code, out)
	}
	src := t.TempDir()
	db, err := engine.Open(context.Background(), src, engine.Options{Create: true, Backend: "leveldb",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	code, out, stderr := runCLI(t, []string{"DURUSBDB_DIR=" + t.TempDir()}, "copy", "--backend", "leveldb", src, dst)
	if code != exitOK || !strings.Contains(out, "copied ") {
		t.Errorf("copy with DURUSBDB_DIR set: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "copy", src); code != exitUsage || !strings.Contains(stderr, "SRC and DST") {
		t.Errorf("copy with one argument: exit %d, %q", code, stderr)
	}
}

// The serve flags that the docs name exist: --log-file (with --logfile,
// Durus's spelling) and --min-free-space.
func TestServeLogFileFlags(t *testing.T) {
	code, out, _ := runCLI(t, nil, "serve", "--help")
	for _, flag := range []string{"--log-file", "--logfile", "--min-free-space", "--metrics", "--min-read-rate", "--min-write-rate"} {
		if code != exitOK || !strings.Contains(out, "  "+flag+" ") {
			t.Errorf("serve --help lacks %s (exit %d)", flag, code)
		}
	}
}
