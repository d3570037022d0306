//go:build !bdb

package recovery

import "context"

func copyLogsSince(ctx context.Context, dir, stage string, prev chainFile, opts Options) (string, []string, error) {
	return "", nil, errNoBDB(dir)
}
