package main

import "testing"

// TestRemoveSettlesOnBothCounts: remove-site reports the group only once
// libdb's view has dropped the site from its list and from its group size;
// a view read between the two updates (2 sites listed, 3 counted: what a
// CI run printed as "3 sites now (A, B)") is not settled.
func TestRemoveSettlesOnBothCounts(t *testing.T) {
	a, b, dead := replSite{Addr: "127.0.0.1:1001", Local: true}, replSite{Addr: "127.0.0.1:1002"}, replSite{Addr: "127.0.0.1:1003"}
	for _, c := range []struct {
		name string
		g    replGroup
		want bool
	}{
		{"still listed and counted", replGroup{NSites: 3, Sites: []replSite{a, b, dead}}, false},
		{"dropped from the list, still counted", replGroup{NSites: 3, Sites: []replSite{a, b}}, false},
		{"counted out, still listed", replGroup{NSites: 2, Sites: []replSite{a, b, dead}}, false},
		{"dropped from both", replGroup{NSites: 2, Sites: []replSite{a, b}}, true},
	} {
		if got := dropped(c.g, dead.Addr); got != c.want {
			t.Errorf("%s: dropped = %v, want %v", c.name, got, c.want)
		}
	}
}
