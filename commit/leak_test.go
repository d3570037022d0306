package commit

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them:
// the group flush leader runs on goroutines that must end with the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
