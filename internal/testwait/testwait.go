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

// For polls cond until it holds, failing t (Fatalf, so from the test's
// goroutine only) with what was awaited once Timeout has passed.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is For with its own bound d.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Poll polls cond, first every millisecond and backing off to every
// 50 ms, until it holds (true) or d passes (false): the one polling loop
// of the tests and of the process harness (internal/proc).
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(min(wait, max(time.Until(deadline), 0)+time.Millisecond))
	}
}
