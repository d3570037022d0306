package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The access flags of serve (--allow-quit, --tls-*,
// --max-connections-per-address) refuse bad values with one clear line,
// before anything is opened.
func TestServeAccessFlags(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad allow-quit", []string{"serve", "--dir", dir, "--allow-quit", "everyone"}, exitUsage, "--allow-quit must be any, local or none"},
		{"negative per-address", []string{"serve", "--dir", dir, "--max-connections-per-address", "-1"}, exitUsage, "must not be negative"},
		{"key without cert", []string{"serve", "--dir", dir, "--tls-key", missing}, exitUsage, "--tls-cert and --tls-key go together"},
		{"client CA without cert", []string{"serve", "--dir", dir, "--tls-client-ca", missing}, exitUsage, "--tls-client-ca needs them"},
		{"stop over TLS", []string{"serve", "--stop", "--tls-cert", missing, "--tls-key", missing}, exitUsage, "--stop does not speak TLS"},
		{"unreadable certificate", []string{"serve", "--dir", dir, "--tls-cert", missing, "--tls-key", missing}, exitFailed, "TLS certificate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, c.args...)
			if code != c.code || !strings.Contains(stderr, c.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, stderr, c.msg)
			}
			if strings.Count(stderr, "\n") > 2 {
				t.Fatalf("want one clear line, got %q", stderr)
			}
		})
	}
}
