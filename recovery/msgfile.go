//go:build bdb

package recovery

import (
	"fmt"
	"os"
)

// messageFile is where libdb writes its recovery messages for
// parseMessages: a file with no name on any file system where the
// platform allows (memfdFile), so that a recovery killed outright leaves
// nothing behind (a temporary file in TMPDIR was left at every kill),
// else a temporary file removed on close.
type messageFile struct {
	f    *os.File
	path string // the path libdb opens and read reads
	temp bool   // path is a temporary file to remove
}

// newMessageFile makes an empty message file.
func newMessageFile() (*messageFile, error) {
	if f, path, ok := memfdFile("durusbdb-recovery"); ok {
		return &messageFile{f: f, path: path}, nil
	}
	f, err := os.CreateTemp("", "durusbdb-recovery-*.txt")
	if err != nil {
		return nil, fmt.Errorf("message file: %w", err)
	}
	return &messageFile{f: f, path: f.Name(), temp: true}, nil
}

// read returns what was written to the message file.
func (m *messageFile) read() string {
	out, _ := os.ReadFile(m.path)
	return string(out)
}

// close releases the message file.
func (m *messageFile) close() {
	m.f.Close()
	if m.temp {
		os.Remove(m.path)
	}
}
