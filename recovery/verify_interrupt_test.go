package recovery

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/testlog"
)

// An interrupt after the trial restore, while verify opens and checks it,
// is reported as the interrupt, not as a bad backup (ErrBadBackup, exit 3
// in the CLI: "the trial restore does not open").
func TestVerifyInterruptedIsNotBadBackup(t *testing.T) {
	for _, kind := range backend.Compiled() {
		t.Run(kind, func(t *testing.T) {
			src := t.TempDir()
			fill(t, src, kind, 30)
			out := filepath.Join(t.TempDir(), "b")
			if _, err := Backup(context.Background(), src, out, BackupOptions{Options: quietOpts()}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := quietOpts()
			opts.Logger = slogTo(&testlog.Buffer{CancelOn: "recovery: restored", Cancel: cancel})
			_, err := VerifyBackup(ctx, out, VerifyOptions{Options: opts})
			if errors.Is(err, ErrBadBackup) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted") {
				t.Fatalf("verify interrupted after the trial restore: %v; want the interrupt, not ErrBadBackup", err)
			}
			if _, err := VerifyBackup(context.Background(), out, VerifyOptions{Options: quietOpts()}); err != nil {
				t.Fatalf("verify again: %v", err)
			}
		})
	}
}
