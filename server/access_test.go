package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 15 item 8: an abstract socket name with several '@' is logged
// whole, not cut at its second NUL.
func TestAbstractNameLoggedWhole(t *testing.T) {
	name := fmt.Sprintf("@durusbdb-log@%d@%d", os.Getpid(), time.Now().UnixNano())
	ln, err := Listen(context.Background(), ListenConfig{Address: name, IgnoreSystemd: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveOn(t, Config{}, newMemStore(), ln)
	waitFor(t, 30*time.Second, "the serving line", func() bool { return containsLog(ts, "serving") })
	if !containsLog(ts, "address="+name+" ") {
		t.Fatalf("log does not name %s whole:\n%s", name, ts.logs.String())
	}
}

// isLocalPeer: unix sockets and loopback TCP peers are local, others not.
func TestIsLocalPeer(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2972}
	for _, tc := range []struct {
		local, remote net.Addr
		want          bool
	}{
		{&net.UnixAddr{Name: "/run/durus.sock", Net: "unix"}, nil, true},
		{&net.UnixAddr{Name: "@x", Net: "unix"}, &net.UnixAddr{Net: "unix"}, true},
		{lo, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, true},
		{lo, &net.TCPAddr{IP: net.IPv4(127, 3, 2, 1), Port: 5000}, true},
		{lo, &net.TCPAddr{IP: net.IPv6loopback, Port: 5000}, true},
		{lo, &net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1"), Port: 5000}, true},
		{lo, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 5000}, false},
		{lo, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 5000}, false},
		{lo, &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 5000}, false},
		{lo, nil, false},
	} {
		if got := isLocalPeer(tc.local, tc.remote); got != tc.want {
			t.Errorf("isLocalPeer(%v, %v) = %v, want %v", tc.local, tc.remote, got, tc.want)
		}
	}
}

func TestParseQuitPolicy(t *testing.T) {
	for _, p := range []QuitPolicy{QuitLocal, QuitAny, QuitNone} {
		got, err := ParseQuitPolicy(p.String())
		if err != nil || got != p {
			t.Errorf("ParseQuitPolicy(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := ParseQuitPolicy("all"); err == nil {
		t.Error("ParseQuitPolicy(all) accepted")
	}
	if QuitPolicy(0) != QuitLocal {
		t.Error("the zero QuitPolicy is not QuitLocal")
	}
}

// --allow-quit any|local|none over TCP loopback and a unix socket. The
// tests can only make loopback peers, so "a peer that is not local" is
// made by replacing the locality check (isLocalPeer itself is tested
// above).
func TestAllowQuit(t *testing.T) {
	notLocal := func(net.Addr, net.Addr) bool { return false }
	for _, tc := range []struct {
		name     string
		policy   QuitPolicy
		noQuit   bool
		isLocal  func(net.Addr, net.Addr) bool
		wantQuit bool
	}{
		{"any", QuitAny, false, nil, true},
		{"any/remote", QuitAny, false, notLocal, true},
		{"local", QuitLocal, false, nil, true},
		{"local/remote", QuitLocal, false, notLocal, false},
		{"none", QuitNone, false, nil, false},
		{"no-quit overrides any", QuitAny, true, nil, false},
	} {
		for _, transport := range []string{"tcp", "unix"} {
			t.Run(tc.name+"/"+transport, func(t *testing.T) {
				var ln net.Listener
				var err error
				if transport == "tcp" {
					ln, err = net.Listen("tcp", "127.0.0.1:0")
				} else {
					ln, err = Listen(context.Background(), ListenConfig{
						Address: filepath.Join(t.TempDir(), "q.sock"), IgnoreSystemd: true})
				}
				if err != nil {
					t.Fatal(err)
				}
				cfg := Config{AllowQuit: tc.policy, NoQuit: tc.noQuit, isLocal: tc.isLocal}
				ts := serveOn(t, cfg, newMemStore(), ln)
				c := ts.dial(t)
				c.send([]byte{'Q'})
				c.expectClosed(30 * time.Second)
				if tc.wantQuit {
					select {
					case <-ts.done:
						ts.done <- nil
					case <-time.After(10 * time.Second):
						t.Fatal("Serve did not return after Q")
					}
					return
				}
				// Refused: logged, and the server keeps serving.
				waitFor(t, 30*time.Second, "the refusal in the log", func() bool { return containsLog(ts, "Q refused") })
				select {
				case <-ts.srv.Done():
					t.Fatal("server shut down on a refused Q")
				default:
				}
				d := ts.dial(t)
				d.send([]byte{'N'})
				d.read(8)
			})
		}
	}
}

// --max-connections-per-address: the limit counts one IP address; other
// addresses, and the same one once a connection closes, are served.
func TestMaxConnsPerAddress(t *testing.T) {
	ts := startServer(t, Config{MaxConnsPerAddress: 2}, newMemStore())
	a, b := ts.dial(t), ts.dial(t)
	c := ts.dialRaw(t)
	c.expectClosed(30 * time.Second)
	waitFor(t, 30*time.Second, "the refusal in the log", func() bool {
		return containsLog(ts, "too many connections from this address")
	})
	// Another loopback address is not affected by 127.0.0.1's count.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	other := &client{t: t, nc: nc}
	other.send([]byte{'N'})
	other.read(8)
	// a and b are still served; when a closes, 127.0.0.1 has a place again.
	b.send([]byte{'N'})
	b.read(8)
	a.nc.Close()
	waitFor(t, 30*time.Second, "a to close", func() bool { return ts.srv.NumConns() == 2 })
	e := ts.dial(t)
	e.send([]byte{'N'})
	e.read(8)
	ts.dialRaw(t).expectClosed(30 * time.Second)
}

// The per-address limit is off by default: more than a handful of
// connections from one address are served.
func TestMaxConnsPerAddressOffByDefault(t *testing.T) {
	ts := startServer(t, Config{}, newMemStore())
	for range 8 {
		c := ts.dial(t)
		c.send([]byte{'N'})
		c.read(8)
	}
}

// --idle-timeout closes a connection idle between requests; a connection
// that keeps sending requests (50 ms apart, well inside the 2 s timeout)
// stays open past the timeout.
func TestIdleTimeout(t *testing.T) {
	const idleFor = 2 * time.Second
	ts := startServer(t, Config{IdleTimeout: idleFor}, newMemStore())
	idle := ts.dial(t)
	busy := ts.dial(t)
	start := time.Now()
	for time.Since(start) < idleFor+idleFor/2 {
		busy.send([]byte{'N'})
		busy.read(8)
		time.Sleep(50 * time.Millisecond) // the busy client's pace, not a wait
	}
	idle.expectClosed(10 * time.Second)
	waitFor(t, 30*time.Second, "the idle close in the log", func() bool { return containsLog(ts, `reason="idle timeout"`) })
	busy.send([]byte{'N'})
	busy.read(8)
	if n := strings.Count(ts.logs.String(), `reason="idle timeout"`); n != 1 {
		t.Fatalf("%d idle closes, want 1:\n%s", n, ts.logs.String())
	}
}
