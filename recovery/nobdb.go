//go:build !bdb

package recovery

import (
	"context"
	"fmt"
	"time"

	"github.com/durusbdb/durusbdb/backend"
)

func bdbCompiled() bool { return false }

func errNoBDB(dir string) error {
	return fmt.Errorf("recovery: %s holds a Berkeley DB database; this durusbdb was built without -tags bdb: %w", dir, backend.ErrNotCompiled)
}

func snapshotBDB(ctx context.Context, dir, stage string, opts Options) (string, []string, error) {
	return "", nil, errNoBDB(dir)
}

func recoverBDBUntil(ctx context.Context, dir string, catastrophic, onlyIfNeeded bool, until time.Time, opts Options) (*Report, error) {
	return nil, errNoBDB(dir)
}

func recoverBDB(ctx context.Context, dir string, catastrophic, onlyIfNeeded bool, opts Options) (*Report, error) {
	return nil, errNoBDB(dir)
}

func upgradeBDB(ctx context.Context, dir string, opts UpgradeOptions) (*UpgradeReport, error) {
	return nil, errNoBDB(dir)
}

func readFormats(dir string) ([]FileFormat, error) { return nil, errNoBDB(dir) }

func pageChecksumsOff(dir string) ([]string, error) { return nil, errNoBDB(dir) }
