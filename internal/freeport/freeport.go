// Package freeport hands out distinct free 127.0.0.1 addresses for tests
// and benchmarks that start servers in other processes.
//
// Asking the kernel for port 0 once per address is not enough: a port
// whose listener has been closed can be handed out again at once, so two
// sites of one replication group could get the same address (libdb's
// repmgr_site then refuses a peer equal to the local site). Addrs keeps
// every listener open until all n addresses are chosen.
package freeport

import (
	"fmt"
	"net"
	"strconv"
)

// Addrs returns n distinct 127.0.0.1 addresses ("127.0.0.1:PORT") whose
// ports were free a moment ago.
func Addrs(n int) ([]string, error) {
	ports, err := Ports(n)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return addrs, nil
}

// Ports is Addrs with the port numbers only. It opens n listeners at once
// and closes them all once every port is known.
func Ports(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("freeport: port %d of %d: %w", i+1, n, err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// TB is the part of testing.TB that T uses.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// T is Addrs for a test: it fails the test if the addresses cannot be had.
func T(tb TB, n int) []string {
	tb.Helper()
	addrs, err := Addrs(n)
	if err != nil {
		tb.Fatal(err)
	}
	return addrs
}
