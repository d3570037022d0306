package engine

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// the collector, checkpoint and probe loops and the apply queue run on goroutines that must end with the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
