package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/testlog"
)

// TestRestoreInterruptedInFinalCheck: SIGINT or SIGTERM (the command's
// context cancelled) after the restored files were moved into DIR, as the
// final open and check begin, leaves a complete database; restore then
// says so and names `durusbdb check --dir DIR` (still a non-zero exit),
// check passes, and a second restore into DIR refuses it naming check and
// removal as the ways on. Before the fix the message was "restored DIR,
// but it does not open: ... context canceled", and the re-run's refusal
// said only that DIR was not empty.
func TestRestoreInterruptedInFinalCheck(t *testing.T) {
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			base := t.TempDir()
			db := filepath.Join(base, "db")
			if err := os.Mkdir(db, 0o755); err != nil {
				t.Fatal(err)
			}
			if code, _, stderr := runCLI(t, nil, "migrate", chainFile(t, 50), "--dir", db, "--create", "--backend", kind); code != exitOK {
				t.Fatalf("migrate: exit %d: %s", code, stderr)
			}
			bk := filepath.Join(base, "backup")
			if code, _, stderr := runCLI(t, nil, "backup", "--dir", db, bk); code != exitOK {
				t.Fatalf("backup: exit %d: %s", code, stderr)
			}
			dir := filepath.Join(base, "restored")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// recovery.Restore logs "recovery: restored" once the files are
			// in DIR, just before the command opens and checks it.
			stderr := &testlog.Buffer{CancelOn: "recovery: restored", Cancel: cancel}
			var stdout bytes.Buffer
			code := run(ctx, cmdIO{stdin: strings.NewReader(""), stdout: &stdout, stderr: stderr}, []string{"restore", bk, dir})
			if ctx.Err() == nil {
				t.Fatalf("the restore never logged that it had restored: exit %d\n%s", code, stderr)
			}
			msg := stderr.String()
			if code == exitOK {
				t.Fatalf("an interrupted restore exited 0\n%s", msg)
			}
			for _, want := range []string{"is complete", "final check was interrupted", "durusbdb check --dir " + dir} {
				if !strings.Contains(msg, want) {
					t.Fatalf("the interrupted restore's error lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "does not open") {
				t.Fatalf("the interrupted restore says the database does not open:\n%s", msg)
			}
			if code, out, stderr := runCLI(t, nil, "check", "--dir", dir); code != exitOK {
				t.Fatalf("check of the restore interrupted in its final check: exit %d\n%s\n%s", code, out, stderr)
			}
			code, _, again := runCLI(t, nil, "restore", bk, dir)
			t.Logf("interrupted:\n%s\nre-run:\n%s", msg, again)
			if code == exitOK {
				t.Fatal("a second restore into the restored directory succeeded")
			}
			for _, want := range []string{"not empty", "durusbdb check --dir " + dir, "remove it"} {
				if !strings.Contains(again, want) {
					t.Fatalf("the refused re-run lacks %q:\n%s", want, again)
				}
			}
		})
	}
}
