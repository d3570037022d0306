package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
)

// TestLiveOutputWriteFailure: a live export (and a live LevelDB backup
// --stream) whose output cannot be written here, after the server did its
// part, fails naming the file and the cause, not the control socket or
// the directory being in use. The write fails for real: OUT's parent is a
// regular file (ENOTDIR); a full file system (ENOSPC) takes the same path,
// with its advice (control's TestRunFileWriteNoSpace writes to /dev/full).
func TestLiveOutputWriteFailure(t *testing.T) {
	bin := cliBinary(t)
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "db")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := startServe(t, bin, dir, kind)
			defer p.quit(t)
			notDir := filepath.Join(base, "plain")
			if err := os.WriteFile(notDir, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			runs := [][]string{{"export", "--dir", dir, filepath.Join(notDir, "out.durus")}}
			if kind == backend.LevelDB {
				runs = append(runs, []string{"backup", "--dir", dir, "--stream", filepath.Join(notDir, "backup")})
			}
			for _, args := range runs {
				out := args[len(args)-1]
				code, _, stderr := runTool(t, bin, args...)
				if code != exitFailed {
					t.Fatalf("%s: exit %d, want %d; stderr:\n%s", args[0], code, exitFailed, stderr)
				}
				for _, want := range []string{"write " + out, "not a directory", "by the server that holds it"} {
					if !strings.Contains(stderr, want) {
						t.Errorf("%s: stderr %q lacks %q", args[0], stderr, want)
					}
				}
				for _, bad := range []string{"control socket", "in use"} {
					if strings.Contains(stderr, bad) {
						t.Errorf("%s: stderr %q blames %q", args[0], stderr, bad)
					}
				}
			}
		})
	}
}
