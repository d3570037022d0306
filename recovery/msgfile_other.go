//go:build bdb && !linux

package recovery

import "os"

// memfdFile: no anonymous files here; the caller uses a temporary file.
func memfdFile(string) (*os.File, string, bool) { return nil, "", false }
