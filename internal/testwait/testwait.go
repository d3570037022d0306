// Package testwait is polling for tests: instead of sleeping a fixed time
// and hoping a background effect happened, a test polls a condition until
// it holds. The bound only catches hangs: it is long enough that a slow,
// loaded machine (-race on two shared cores) never reaches it.
package testwait

import (
	"testing"
	"time"
)

// Timeout bounds every For: reaching it means something hangs.
const Timeout = 30 * time.Second

// interval is the pause between two polls.
const interval = time.Millisecond

// For polls cond until it holds, failing t (Fatalf, so from the test's
// goroutine only) with what was awaited once Timeout has passed.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !poll(Timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", Timeout, what)
	}
}

// poll reports whether cond held within d.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}
