package malloc

import (
	"os"
	"testing"
)

func TestLimited(t *testing.T) {
	want := ArenaLimit
	if os.Getenv("MALLOC_ARENA_MAX") != "" {
		want = 0
	}
	if got := Limited(); got != want {
		t.Fatalf("arena limit %d, want %d", got, want)
	}
}
