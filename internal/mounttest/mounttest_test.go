package mounttest

import (
	"testing"
)

// recorder is a testing.TB that records how the test ended.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = format
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = format
}

// TestUnavailable: without the variable a missing mount fails the test;
// with DURUSBDB_SKIP_MOUNT_TESTS=1 it skips; any other value still fails.
func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		env        string
		wantFailed bool
	}{{"", true}, {"0", true}, {"1", false}} {
		t.Setenv(EnvSkip, c.env)
		r := &recorder{TB: t}
		Unavailable(r, "cannot mount: %v", "EPERM")
		if r.failed != c.wantFailed || r.skipped == c.wantFailed {
			t.Fatalf("%s=%q: failed %v, skipped %v", EnvSkip, c.env, r.failed, r.skipped)
		}
	}
}
