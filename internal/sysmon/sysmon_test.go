package sysmon

import (
	"slices"
	"testing"
)

func TestEnviron(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		want    []string
		changed bool
	}{
		{"no GODEBUG", []string{"A=1"}, []string{"A=1", "GODEBUG=" + Setting}, true},
		{"empty GODEBUG", []string{"GODEBUG=", "B=2"}, []string{"GODEBUG=" + Setting, "B=2"}, true},
		{"other settings kept", []string{"GODEBUG=gctrace=1"}, []string{"GODEBUG=gctrace=1," + Setting}, true},
		{"operator's schedtrace stands", []string{"GODEBUG=gctrace=1,schedtrace=0"}, []string{"GODEBUG=gctrace=1,schedtrace=0"}, false},
		{"already set", []string{"GODEBUG=" + Setting}, []string{"GODEBUG=" + Setting}, false},
		{"duplicate GODEBUG dropped", []string{"GODEBUG=x=1", "GODEBUG=y=2"}, []string{"GODEBUG=x=1," + Setting}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := Environ(slices.Clone(tc.in))
			if changed != tc.changed || !slices.Equal(got, tc.want) {
				t.Fatalf("Environ(%q) = %q, %v; want %q, %v", tc.in, got, changed, tc.want, tc.changed)
			}
			// Applying it twice changes nothing more: a re-executed process
			// does not execute again.
			if again, ch := Environ(got); ch || !slices.Equal(again, got) {
				t.Fatalf("second Environ(%q) = %q, %v: not idempotent", got, again, ch)
			}
		})
	}
}
