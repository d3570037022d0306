package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestCopyCacheHint: a destination that lacks room for its environment
// gets the flag that shrinks it (--cache-size, with its value); other
// errors get nothing added.
func TestCopyCacheHint(t *testing.T) {
	full := fmt.Errorf("bdb: open dst: 10 MiB free ...: free some space or lower the cache size: %w", kv.ErrNoSpace)
	if h := copyCacheHint(full, 8<<20); !strings.Contains(h, "--cache-size (8 MiB)") {
		t.Errorf("hint for no space with 8 MiB: %q", h)
	}
	if h := copyCacheHint(full, 0); !strings.Contains(h, "--cache-size (64 MiB)") {
		t.Errorf("hint for no space with the default: %q", h)
	}
	if h := copyCacheHint(errors.New("other"), 8<<20); h != "" {
		t.Errorf("hint for another error: %q", h)
	}
}
