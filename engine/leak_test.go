package engine

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// the collector, checkpoint and probe loops and the apply queue run on goroutines that must end with the tests.
// A re-executed kill -9 child (crash_test.go) runs its own main instead.
func TestMain(m *testing.M) {
	if os.Getenv(envCrashChild) != "" {
		os.Exit(crashChildMain())
	}
	goleak.VerifyTestMain(m)
}
