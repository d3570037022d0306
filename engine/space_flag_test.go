package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestSpaceRefusalNamesFlag: a commit refused for want of free space says
// which serve flag sets the reserve.
func TestSpaceRefusalNamesFlag(t *testing.T) {
	g := spaceGuard{dir: t.TempDir(), reserve: 1 << 62}
	err := g.admit(100)
	if !errors.Is(err, kv.ErrNoSpace) {
		t.Fatalf("admit below the reserve: %v, want kv.ErrNoSpace", err)
	}
	if !strings.Contains(err.Error(), "--min-free-space") {
		t.Errorf("refusal %q does not name --min-free-space", err)
	}
	if err := (&spaceGuard{dir: g.dir, reserve: -1}).admit(100); err != nil {
		t.Errorf("disabled reserve: %v", err)
	}
}
