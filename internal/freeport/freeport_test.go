package freeport

import "testing"

// TestAddrsDistinct: many addresses asked for at once are all different,
// and their ports match.
func TestAddrsDistinct(t *testing.T) {
	for range 500 {
		addrs := T(t, 16)
		seen := map[string]bool{}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("address %s handed out twice in %v", a, addrs)
			}
			seen[a] = true
		}
	}
	ports, err := Ports(8)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: %d not a fresh port", ports, p)
		}
		seen[p] = true
	}
}
