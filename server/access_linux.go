package server

import (
	"net"
	"syscall"
	"unsafe"
)

// abstractName returns the whole name of a listener on a Linux abstract
// unix socket, with every NUL shown as '@' (as the Durus client writes it),
// and true; false for any other listener. The net package's own address
// stops at the first NUL after the leading one ("@a@b" would be "@a").
func abstractName(ln net.Listener) (string, bool) {
	if a := ln.Addr(); a == nil || a.Network() != "unix" || len(a.String()) == 0 || a.String()[0] != '@' {
		return "", false
	}
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return "", false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return "", false
	}
	var name []byte
	cerr := rc.Control(func(fd uintptr) {
		var sa syscall.RawSockaddrUnix
		size := uint32(unsafe.Sizeof(sa))
		_, _, errno := syscall.RawSyscall(syscall.SYS_GETSOCKNAME, fd,
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)))
		off := uint32(unsafe.Offsetof(sa.Path))
		if errno != 0 || sa.Family != syscall.AF_UNIX || size <= off || size > uint32(unsafe.Sizeof(sa)) {
			return
		}
		path := sa.Path[:size-off]
		if path[0] != 0 {
			return
		}
		name = make([]byte, len(path))
		for i, ch := range path {
			if ch == 0 {
				name[i] = '@'
			} else {
				name[i] = byte(ch)
			}
		}
	})
	if cerr != nil || name == nil {
		return "", false
	}
	return string(name), true
}
