//go:build bdb

package bdb

import (
	"testing"

	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// TestAckPolicyFor: the policy asks libdb for at least the acknowledgements
// that keep a commit through an election of the configured group ((m-1)/2
// other sites, m the larger of the configured and the known group),
// whatever the membership known so far; QUORUM where it already does.
func TestAckPolicyFor(t *testing.T) {
	for _, c := range []struct {
		members, configured int
		strict              bool
		want                int
	}{
		{1, 1, true, libdb.AcksQuorum},  // a group of one
		{1, 3, true, libdb.AcksAll},     // alone so far: no other site to ask
		{2, 3, true, libdb.AcksAll},     // QUORUM would ask 1/2 = 0
		{3, 3, true, libdb.AcksQuorum},  // QUORUM asks 1
		{4, 5, true, libdb.AcksAll},     // QUORUM would ask 3/2 = 1 of the 2 needed
		{5, 5, true, libdb.AcksQuorum},  // QUORUM asks 2
		{2, 2, false, libdb.AcksQuorum}, // an allowed two-site group: QUORUM asks 1
		{4, 3, true, libdb.AcksQuorum},  // a fourth site added: QUORUM asks 3/2 = 1, as needed
	} {
		if got := ackPolicyFor(c.members, c.configured, c.strict); got != c.want {
			t.Errorf("ackPolicyFor(%d members, %d configured, strict %v) = %d, want %d", c.members, c.configured, c.strict, got, c.want)
		}
	}
}
