package main

import (
	"errors"
	"testing"

	"github.com/durusbdb/durusbdb/server"
)

// --max-invalid maps to server.Config.MaxInvalid (the cap of I7 in oids,
// and the most records a commit may hold); 0, negative and values over an
// int4 count are usage errors.
func TestServeMaxInvalid(t *testing.T) {
	f, _ := parseServe(t, "--dir", "d")
	cfg, err := f.serverConfig()
	if err != nil || cfg.MaxInvalid != server.DefaultMaxInvalid {
		t.Fatalf("default: MaxInvalid %d, %v; want %d", cfg.MaxInvalid, err, server.DefaultMaxInvalid)
	}
	f, _ = parseServe(t, "--dir", "d", "--max-invalid", "20000000")
	if cfg, err = f.serverConfig(); err != nil || cfg.MaxInvalid != 20_000_000 {
		t.Fatalf("--max-invalid 20000000: MaxInvalid %d, %v", cfg.MaxInvalid, err)
	}
	for _, bad := range []string{"0", "-1", "4294967296"} {
		f, _ = parseServe(t, "--dir", "d", "--max-invalid", bad)
		var ue *usageError
		if _, err := f.serverConfig(); !errors.As(err, &ue) {
			t.Errorf("--max-invalid %s: %v, want a usage error", bad, err)
		}
	}
}
