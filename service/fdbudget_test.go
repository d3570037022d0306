package service

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestFitConnections: --max-connections is lowered, with a warning naming
// the figures, to what the descriptor limit holds beside the descriptors
// open and the reserve; a replica counts two per connection, LevelDB keeps
// a fifth of the limit for its tables, and a limit with no room left is a
// configuration error. A limit with room for all is left alone, silently.
func TestFitConnections(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// The open count may move by the descriptor ReadDir itself holds.
	limit := uint64(len(ents) + fdReserve + 100)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	n, err := fitConnections(log, 4096, "bdb", false)
	if err != nil || n < 98 || n > 102 {
		t.Fatalf("bdb: %d, %v; want about 100", n, err)
	}
	if !strings.Contains(logs.String(), "connections limited by the file-descriptor limit") || !strings.Contains(logs.String(), "requested=4096") {
		t.Fatalf("no warning naming the figures:\n%s", logs.String())
	}
	if r, err := fitConnections(log, 4096, "bdb", true); err != nil || r != n/2 && r != (n+1)/2 && r != (n-1)/2 {
		t.Fatalf("replica: %d, %v; want about %d", r, err, n/2)
	}
	logs.Reset()
	if n, err := fitConnections(log, 10, "bdb", false); err != nil || n != 10 || logs.Len() != 0 {
		t.Fatalf("room for 10: %d, %v, log %q", n, err, logs.String())
	}
	// LevelDB keeps a fifth of the limit for its tables.
	if l, err := fitConnections(log, 4096, "leveldb", false); err != nil || l < n-int(limit/5)-2 || l > n-int(limit/5)+2 {
		t.Fatalf("leveldb: %d, %v; want about %d", l, err, n-int(limit/5))
	}
	// No room at all: a configuration error.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(len(ents) + fdReserve - 10), Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	var ce *ConfigError
	if _, err := fitConnections(log, 4096, "bdb", false); !errors.As(err, &ce) || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("no room: %v; want a ConfigError naming RLIMIT_NOFILE", err)
	}
}
