package engine

import (
	"errors"
	"log/slog"
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

// TestSpaceAdmitNoAlloc: admitting a commit (once per staged commit)
// allocates nothing: the guard holds its directory open and asks
// fstatfs instead of converting the path each time; after close it
// still answers, by path.
func TestSpaceAdmitNoAlloc(t *testing.T) {
	g := newSpaceGuard(t.TempDir(), 1, slog.New(slog.DiscardHandler))
	defer g.close()
	if g.f == nil {
		t.Fatal("newSpaceGuard did not open its directory")
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := g.admit(100); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("admit: %v allocations per call, want 0", n)
	}
	g.close()
	g.reserve = 1 << 62
	if err := g.admit(100); !errors.Is(err, kv.ErrNoSpace) {
		t.Errorf("admit after close below the reserve: %v, want kv.ErrNoSpace", err)
	}
}
