// Package mounttest decides what a test does when it cannot set up what
// only root can (a small tmpfs, a read-only bind mount, a loop-mounted ext4
// image, a client run as another user). CI runs as root, where every such
// setup works, so the test fails there rather than passing unseen; a
// developer on a machine without them sets DURUSBDB_SKIP_MOUNT_TESTS=1 to
// skip these tests instead.
package mounttest

import (
	"fmt"
	"os"
	"testing"
)

// EnvSkip is the environment variable that, set to "1", turns the failure
// of Unavailable into a skip.
const EnvSkip = "DURUSBDB_SKIP_MOUNT_TESTS"

// Unavailable ends the test because a mount it needs cannot be made: it
// fails, saying why, unless EnvSkip is "1", when it skips.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%s (skipped: %s=1)", msg, EnvSkip)
		return
	}
	t.Fatalf("%s (set %s=1 to skip the mount tests on a machine that cannot mount)", msg, EnvSkip)
}
