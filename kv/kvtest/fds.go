package kvtest

import (
	"os"
	"testing"
)

// OpenFDs counts the process's open file descriptors (Linux
// /proc/self/fd), for tests that a failed open leaves none behind.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
