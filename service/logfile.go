package service

import (
	"fmt"
	"os"
	"sync"
)

// logFile is the log file of serve --log-file: an append-only file that
// Reopen reopens at its path, so that logrotate can rename it and send
// SIGHUP. Safe for concurrent use.
type logFile struct {
	path string

	mu sync.Mutex
	f  *os.File
}

// openLogFile opens (creating it if needed) the log file at path for
// appending.
func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return &logFile{path: path, f: f}, nil
}

// Write appends p to the file open now.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the file at the path again (a new file if it was renamed
// or removed) and closes the old one. If the path cannot be opened the old
// file is kept and the error returned.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("reopening the log file: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("closing the old log file: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
