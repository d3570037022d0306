//go:build bdb

package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// listenHeld holds a TCP listener on a free 127.0.0.1 port, closed at
// the end of the test.
func listenHeld(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestServeReplListenUnusable: when libdb's Replication Manager cannot
// bind --repl-listen (another process listens there; an address not of
// this host), serve fails naming the flag and the address and saying what
// to do, not only with libdb's message.
func TestServeReplListenUnusable(t *testing.T) {
	bin := cliBinary(t)
	busy := listenHeld(t).Addr().String()
	peer := listenHeld(t).Addr().String() // never contacted: the bind fails first
	_, busyPort, _ := net.SplitHostPort(busy)
	cases := []struct {
		name, listen string
		want         []string
	}{
		{"in use", busy, []string{"--repl-listen " + busy, "already in use", "ss -ltnp", busyPort, "another port"}},
		{"not this host's", "192.0.2.1:3650", []string{"--repl-listen 192.0.2.1:3650", "not an address of this host"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			code, _, stderr := runTool(t, bin, "serve", "--dir", filepath.Join(base, "db"), "--create", "--address", filepath.Join(base, "durus.sock"),
				"--repl-listen", c.listen, "--repl-peer", peer, "--repl-init", "--repl-allow-two-sites")
			if code != exitFailed {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailed, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}
