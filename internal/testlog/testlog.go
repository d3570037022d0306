// Package testlog is a log sink for tests: servers under test write their
// log lines into a Buffer from many goroutines, and the test then asserts
// on them. With `go test -v` the lines are also echoed to stderr, so a
// failing run shows what the server said.
package testlog

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// Buffer collects log output; it is safe for concurrent use. The zero
// value is ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p (and echoes it to stderr under go test -v).
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
