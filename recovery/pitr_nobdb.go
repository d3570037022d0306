//go:build !bdb

package recovery

import (
	"context"
	"time"
)

func recoverBDBUntil(ctx context.Context, dir string, until time.Time, opts Options) (*Report, error) {
	return nil, errNoBDB(dir)
}
