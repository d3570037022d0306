//go:build !linux

package server

import "net"

// abstractName reports false: abstract unix sockets exist only on Linux.
func abstractName(net.Listener) (string, bool) { return "", false }
