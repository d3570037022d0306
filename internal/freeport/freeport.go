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
)

// Addrs returns n distinct 127.0.0.1 addresses ("127.0.0.1:PORT") whose
// ports were free a moment ago.
func Addrs(n int) ([]string, error) {
	tcp, err := listen(n)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, n)
	for i, a := range tcp {
		addrs[i] = a.String()
	}
	return addrs, nil
}

// Ports is Addrs with the port numbers only.
func Ports(n int) ([]int, error) {
	tcp, err := listen(n)
	if err != nil {
		return nil, err
	}
	ports := make([]int, n)
	for i, a := range tcp {
		ports[i] = a.Port
	}
	return ports, nil
}

// listen opens n listeners on 127.0.0.1 port 0 at once and closes them
// all once every address is known.
func listen(n int) ([]*net.TCPAddr, error) {
	addrs := make([]*net.TCPAddr, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("freeport: address %d of %d: %w", i+1, n, err)
		}
		defer l.Close()
		addrs[i] = l.Addr().(*net.TCPAddr)
	}
	return addrs, nil
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
