package txn

import (
	"testing"
	"time"
)

// waitTimeout bounds every poll of this package's tests: long enough that
// only a hang (never a slow, loaded machine) reaches it.
const waitTimeout = 30 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
