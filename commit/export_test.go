package commit

import "time"

// Test-only views of the Token, the Hold and the Group.

// Lease returns the token's lease.
func (t *Token) Lease() time.Duration { return t.lease }

// Revoked reports whether the lease has taken the token away from h.
func (h *Hold) Revoked() bool {
	h.t.mu.Lock()
	defer h.t.mu.Unlock()
	return h.state == holdRevoked
}

// TimerArms returns how many times the lease timer was (re)armed.
func (t *Token) TimerArms() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.arms
}
