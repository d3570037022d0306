//go:build bdb

package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
)

// recoverBDBUntil runs catastrophic recovery in dir bounded by until
// (bdb.RecoverEnvUntil), holding the directory lock, with libdb's verbose
// recovery messages captured, and marks the directory clean when it
// succeeds.
func recoverBDBUntil(ctx context.Context, dir string, until time.Time, opts Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("catastrophic recovery of %s until %s", dir, until.UTC().Format(time.RFC3339))
	r := &Report{Dir: dir, Backend: "bdb", Kind: KindCatastrophic}
	lock, err := bdb.LockDir(dir)
	if err != nil {
		if errors.Is(err, kv.ErrInUse) {
			return nil, fmt.Errorf("recovery: %s: another process owns the directory: %w", what, err)
		}
		return nil, fmt.Errorf("recovery: %s: %w", what, err)
	}
	defer lock.Close()
	mf, err := os.CreateTemp("", "durusbdb-recovery-*.txt")
	if err != nil {
		return nil, fmt.Errorf("recovery: %s: message file: %w", what, err)
	}
	mfName := mf.Name()
	mf.Close()
	defer os.Remove(mfName)
	start := time.Now()
	info, err := bdb.RecoverEnvUntil(dir, until, bdb.RecoverOptions{Catastrophic: true, MessageFile: mfName, CacheSize: opts.CacheSize})
	r.Duration = time.Since(start)
	out, _ := os.ReadFile(mfName)
	r.parseMessages(string(out))
	if err != nil {
		msg := ""
		if len(r.Messages) > 0 {
			msg = " (libdb said: " + strings.Join(r.Messages, "; ") + ")"
		}
		return r, fmt.Errorf("recovery: %s failed%s: %w", what, msg, err)
	}
	if err := bdb.MarkRecovered(lock); err != nil {
		return r, fmt.Errorf("recovery: %s: %w", what, err)
	}
	r.Ran = true
	r.To = lsn(info.EndFile, info.EndOffset)
	if r.Checkpoint == "" {
		r.Checkpoint = lsn(info.CkpFile, info.CkpOffset)
	}
	r.LogFiles = info.LogFiles
	return r, nil
}
