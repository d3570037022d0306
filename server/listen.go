package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// listenBacklog is the listen(2) backlog (the kernel caps it at somaxconn;
// §3.1 asks for at least 40).
const listenBacklog = 1024

// ListenConfig says where a server listens (PROTOCOL.md §3.1). The fields
// are named after the `durus -s` options.
type ListenConfig struct {
	// Host and Port give the TCP address; Host "" means 127.0.0.1. Port 0
	// picks a free port (the CLI passes 2972 by default).
	Host string
	Port int
	// Address, if set, is a unix socket path, or a Linux abstract socket
	// name starting with '@' (every '@' becomes a NUL byte, as the Durus
	// client does). It overrides Host and Port.
	Address string
	// Owner and Group (names or numbers) chown a unix socket file.
	Owner, Group string
	// Umask, if set, gives the socket file mode 0777 &^ *Umask instead of
	// the default 0600.
	Umask *int
	// IgnoreSystemd disables socket activation (LISTEN_PID / LISTEN_FDS).
	IgnoreSystemd bool
}

// Endpoint returns the network ("tcp" or "unix") and the address to dial or
// listen on, with abstract names already transformed.
func (lc ListenConfig) Endpoint() (network, address string) {
	if lc.Address != "" {
		if strings.HasPrefix(lc.Address, "@") {
			return "unix", strings.ReplaceAll(lc.Address, "@", "\x00")
		}
		return "unix", lc.Address
	}
	host := lc.Host
	if host == "" {
		host = DefaultHost
	}
	return "tcp", net.JoinHostPort(host, strconv.Itoa(lc.Port))
}

// String names the address for messages ('@' for abstract names).
func (lc ListenConfig) String() string {
	if lc.Address != "" {
		return lc.Address
	}
	_, a := lc.Endpoint()
	return a
}

// maxUnixAddress is the longest unix socket address bind takes: sun_path
// is 108 bytes, one of them the terminating NUL of a path (an abstract
// name's leading NUL counts in its length).
const maxUnixAddress = 107

// Listen opens the listening socket of lc: an inherited systemd socket if
// LISTEN_PID is this process and LISTEN_FDS is 1, else the TCP, unix path or
// abstract address. A unix socket file is created with mode 0600 (or per
// Umask) before it accepts connections; an existing path is replaced only if
// it is a stale socket. Closing the listener removes the socket file if it
// is still the one created here.
func Listen(ctx context.Context, lc ListenConfig) (net.Listener, error) {
	if !lc.IgnoreSystemd {
		ln, err := systemdListener()
		if ln != nil || err != nil {
			return ln, err
		}
	}
	network, address := lc.Endpoint()
	if network == "unix" && len(address) > maxUnixAddress {
		return nil, fmt.Errorf("unix socket address %s is %d bytes long; the kernel takes at most %d (sun_path): choose a shorter path or name", lc.Address, len(address), maxUnixAddress)
	}
	if network == "unix" && !strings.HasPrefix(lc.Address, "@") {
		return listenUnixPath(lc)
	}
	var cfg net.ListenConfig
	ln, err := cfg.Listen(ctx, network, address)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("address %s is already in use (another server running?)", lc)
		}
		return nil, fmt.Errorf("listening on %s: %w", lc, err)
	}
	return ln, nil
}

// systemdListener returns the socket inherited on fd 3, nil if socket
// activation does not apply, or an error for a LISTEN_FDS other than 0 or 1.
func systemdListener() (net.Listener, error) {
	pid := os.Getenv("LISTEN_PID")
	if pid == "" || pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	fds := os.Getenv("LISTEN_FDS")
	n, err := strconv.Atoi(fds)
	switch {
	case err != nil:
		return nil, fmt.Errorf("systemd socket activation: LISTEN_FDS=%q is not an integer", fds)
	case n == 0:
		return nil, nil
	case n != 1:
		return nil, fmt.Errorf("systemd socket activation: LISTEN_FDS=%d, but exactly one socket is supported", n)
	}
	f := os.NewFile(3, "systemd-socket")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("systemd socket activation: fd 3: %w", err)
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	return ln, nil
}

// unixListener removes its socket file on Close if the file is still the
// socket it created.
type unixListener struct {
	net.Listener
	path     string
	dev, ino uint64
	once     sync.Once
}

func (l *unixListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		var st syscall.Stat_t
		if syscall.Lstat(l.path, &st) == nil && uint64(st.Dev) == l.dev && st.Ino == l.ino {
			os.Remove(l.path)
		}
	})
	return err
}

// listenUnixPath creates the socket file per §3.1.
func listenUnixPath(lc ListenConfig) (net.Listener, error) {
	path := lc.Address
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("refusing to start: %s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("refusing to start: another server is listening on %s", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("refusing to start: cannot tell whether socket %s is stale: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	uid, gid, err := lookupOwner(lc.Owner, lc.Group)
	if err != nil {
		return nil, err
	}

	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for %s: %w", path, err)
	}
	fail := func(format string, err error) (net.Listener, error) {
		syscall.Close(fd)
		return nil, fmt.Errorf(format, path, err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail("binding %s: %w (another server starting?)", err)
		}
		return fail("binding %s: %w", err)
	}
	remove := func(format string, err error) (net.Listener, error) {
		os.Remove(path)
		return fail(format, err)
	}
	// Mode and owner before listen(2): nobody can connect before that.
	mode := os.FileMode(0o600)
	if lc.Umask != nil {
		mode = os.FileMode(0o777 &^ *lc.Umask)
	}
	if err := os.Chmod(path, mode); err != nil {
		return remove("chmod %s: %w", err)
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Lchown(path, uid, gid); err != nil {
			return remove("chown %s: %w", err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return remove("stat %s: %w", err)
	}
	if err := syscall.Listen(fd, listenBacklog); err != nil {
		return remove("listen on %s: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("listener for %s: %w", path, err)
	}
	return &unixListener{Listener: ln, path: path, dev: uint64(st.Dev), ino: st.Ino}, nil
}

// lookupOwner resolves user and group names or numbers; -1 means unchanged.
func lookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		if n, e := strconv.Atoi(owner); e == nil {
			uid = n
		} else if u, e := user.Lookup(owner); e == nil {
			uid, _ = strconv.Atoi(u.Uid)
		} else {
			return 0, 0, fmt.Errorf("unknown owner %q: %w", owner, e)
		}
	}
	if group != "" {
		if n, e := strconv.Atoi(group); e == nil {
			gid = n
		} else if g, e := user.LookupGroup(group); e == nil {
			gid, _ = strconv.Atoi(g.Gid)
		} else {
			return 0, 0, fmt.Errorf("unknown group %q: %w", group, e)
		}
	}
	return uid, gid, nil
}

// Stop asks the server at lc to quit (Q), then waits until the address stops
// accepting connections or ctx ends (`durus -s --stop`; callers normally give
// ctx a 10 s timeout).
func Stop(ctx context.Context, lc ListenConfig) error {
	network, address := lc.Endpoint()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return fmt.Errorf("no server at %s: %w", lc, err)
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Write([]byte{'Q'})
	c.Close()
	if err != nil {
		return fmt.Errorf("sending Q to %s: %w", lc, err)
	}
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, network, address)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("server at %s still accepting after Q (the server may refuse Q: --allow-quit): %w", lc, ctx.Err())
			}
			return nil
		}
		c.Close()
		select {
		case <-ctx.Done():
			return fmt.Errorf("server at %s still accepting after Q (the server may refuse Q: --allow-quit): %w", lc, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
