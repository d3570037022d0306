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

	// CancelOn, with Cancel, cancels a context once the buffer holds the
	// text (a log line): a seam to interrupt the code under test at the
	// point that line marks, without sleeping.
	CancelOn string
	Cancel   func()
}

// Write appends p (and echoes it to stderr under go test -v).
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	n, err := l.b.Write(p)
	if l.CancelOn != "" && l.Cancel != nil && bytes.Contains(l.b.Bytes(), []byte(l.CancelOn)) {
		l.Cancel()
	}
	return n, err
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
