package control

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/internal/netaccept"
)

// SocketName is the control socket's file name inside the database directory.
const SocketName = "durusbdb.control"

// TempPrefix starts the names of the staging directories the server
// makes inside the database directory for files it streams to a client
// (a dotfile: both backends ignore it).
const TempPrefix = ".durusbdb-control-tmp-"

// maxSunPath is the size of sun_path in struct sockaddr_un (Linux),
// including the terminating NUL.
const maxSunPath = 108

// maxRequest bounds a request line.
const maxRequest = 1 << 20

// Frame types; see the package documentation.
const (
	frameStdout = 'o'
	frameStderr = 'e'
	frameFile   = 'f'
	frameData   = 'd'
	frameEnd    = 'z'
	frameExit   = 'x'
)

// Errors of this package.
var (
	// ErrNoServer: nothing answers on the directory's control socket.
	ErrNoServer = errors.New("control: no server answers on the control socket")
	// ErrRefused: the server refused the connection (another user).
	ErrRefused = errors.New("control: refused by the server")
	// ErrProtocol: the other side sent something this package does not
	// understand.
	ErrProtocol = errors.New("control: protocol error")
)

// Request is what a client asks: run Command with Args, as the command
// line `durusbdb Command Args...` would, with the client's DURUSBDB_*
// environment variables in Env.
type Request struct {
	Command string   `json:"command"`
	Args    []string `json:"args"`
	Env     []string `json:"env,omitempty"`
}

// FileHeader announces a file the client is to write.
type FileHeader struct {
	// Path as the client named it (relative paths are relative to the
	// client's working directory).
	Path string `json:"path"`
	// Replace allows replacing an existing file.
	Replace bool `json:"replace,omitempty"`
	// Mode is the file's permission bits.
	Mode uint32 `json:"mode"`
}

// Exit is the last frame: the command's exit code and, if it failed,
// its error message. Usage marks a bad invocation (exit code 2).
type Exit struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
	Usage bool   `json:"usage,omitempty"`
	// Refused: the server refused the client (another user).
	Refused bool `json:"refused,omitempty"`
}

// Handler runs one request, writing through r, and returns its Exit.
// ctx is cancelled when the server stops or the client goes away.
type Handler func(ctx context.Context, req Request, r *Response) Exit

// SocketAddr returns the control socket address of the database directory
// dir: the absolute path DIR/durusbdb.control, or, if that does not fit
// in sun_path, the abstract name "@durusbdb-control-<hash of DIR>".
func SocketAddr(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("control: socket address for %s: %w", dir, err)
	}
	p := filepath.Join(abs, SocketName)
	if len(p) < maxSunPath {
		return p, nil
	}
	sum := sha256.Sum256([]byte(abs))
	return "@durusbdb-control-" + hex.EncodeToString(sum[:12]), nil
}

// PeerAllowed reports whether a peer of uid may use the control socket of
// a server running as serverUID: the same user, or root.
func PeerAllowed(peerUID, serverUID uint32) bool {
	return peerUID == serverUID || peerUID == 0
}

// Server is a listening control socket.
type Server struct {
	addr    string
	dir     string
	ln      *net.UnixListener
	handler Handler
	log     *slog.Logger
	uid     uint32

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu     sync.Mutex
	conns  map[*net.UnixConn]struct{} // open connections; owned by mu
	closed bool                       // owned by mu
}

// Listen creates the control socket of dir (replacing a stale one left by
// a killed server; failing if a server answers on it), removes staging
// directories left by an earlier server, and serves requests with h until
// Close. The caller must own dir (hold its lock), so that no other server
// can be listening.
func Listen(dir string, h Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	addr, err := SocketAddr(dir)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(addr, "@") {
		if _, err := os.Lstat(addr); err == nil {
			c, derr := net.DialTimeout("unix", addr, time.Second)
			if derr == nil {
				c.Close()
				return nil, fmt.Errorf("control: %s: another server answers on it", addr)
			}
			if err := os.Remove(addr); err != nil {
				return nil, fmt.Errorf("control: remove stale socket %s: %w", addr, err)
			}
			log.Info("control: removed a stale control socket", "path", addr)
		}
	}
	if olds, _ := filepath.Glob(filepath.Join(dir, TempPrefix+"*")); len(olds) > 0 {
		for _, o := range olds {
			os.RemoveAll(o)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", addr, err)
	}
	ln.SetUnlinkOnClose(true)
	if !strings.HasPrefix(addr, "@") {
		// Peers are checked by uid too (serve), so the short window
		// before the chmod serves nobody else.
		if err := os.Chmod(addr, 0o600); err != nil {
			ln.Close()
			return nil, fmt.Errorf("control: chmod %s: %w", addr, err)
		}
	}
	s := &Server{addr: addr, dir: dir, ln: ln, handler: h, log: log, uid: uint32(os.Getuid()), conns: map[*net.UnixConn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the socket address (a path, or @name for an abstract socket).
func (s *Server) Addr() string { return s.addr }

// Close stops accepting, cancels the requests running, closes their
// connections (a client that stopped reading cannot hold it up) and waits
// for them, and removes the socket file. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		s.cancel()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if err != nil && !errors.Is(err, net.ErrClosed) {
			err = fmt.Errorf("control: close %s: %w", s.addr, err)
		} else {
			err = nil
		}
	})
	return err
}

// acceptLoop serves connections until the socket is closed. A failed
// accept for want of descriptors (a flood of Durus connections) is waited
// out: a loop that ended there left the server without its control socket
// for the rest of its life.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	err := netaccept.Loop(s.ln, s.ctx.Done(), func(c net.Conn) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c.(*net.UnixConn))
		}()
	}, func(err error, delay time.Duration) {
		s.log.Warn("control: accept failed; retrying", "addr", s.addr, "err", err, "delay", delay)
	})
	if err != nil && s.ctx.Err() == nil {
		s.log.Error("control: accept", "addr", s.addr, "err", err)
	}
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return cred.Uid, nil
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	r := &Response{w: bufio.NewWriterSize(c, 64<<10)}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadBytes('\n')
	if err != nil {
		s.log.Warn("control: reading the request", "addr", s.addr, "err", err)
		return
	}
	c.SetReadDeadline(time.Time{})
	// Checked after reading the request: closing a unix socket with
	// unread data resets the peer, which would lose the refusal.
	uid, err := peerUID(c)
	if err != nil || !PeerAllowed(uid, s.uid) {
		s.log.Warn("control: connection refused", "addr", s.addr, "peer_uid", uid, "err", err)
		r.exit(Exit{Code: 1, Refused: true, Error: fmt.Sprintf("the control socket serves only uid %d (the server's user) and root, not uid %d", s.uid, uid)})
		return
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		r.exit(Exit{Code: 2, Error: fmt.Sprintf("bad request: %v", err), Usage: true})
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The client going away (EOF on the read side) cancels the request.
	go func() {
		var b [1]byte
		c.Read(b[:])
		cancel()
	}()
	s.log.Info("control: request", "command", req.Command, "args", req.Args)
	ex := s.handler(ctx, req, r)
	r.exit(ex)
}

// Response is the server's side of one request: the tool's standard
// output and error, files, and the exit status. Its methods are safe for
// concurrent use.
type Response struct {
	mu  sync.Mutex
	w   *bufio.Writer
	err error // first write error: the client has gone
}

// frame writes one frame and flushes it.
func (r *Response) frame(typ byte, p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frameLocked(typ, p, true)
}

func (r *Response) frameLocked(typ byte, p []byte, flush bool) error {
	if r.err != nil {
		return r.err
	}
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	if _, err := r.w.Write(h[:]); err != nil {
		r.err = err
		return err
	}
	if _, err := r.w.Write(p); err != nil {
		r.err = err
		return err
	}
	if flush {
		if err := r.w.Flush(); err != nil {
			r.err = err
			return err
		}
	}
	return nil
}

func (r *Response) exit(ex Exit) {
	b, _ := json.Marshal(ex)
	r.frame(frameExit, b)
}

type streamWriter struct {
	r   *Response
	typ byte
}

func (w streamWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		n := min(len(p), 1<<20)
		if err := w.r.frame(w.typ, p[:n]); err != nil {
			return 0, fmt.Errorf("control: client gone: %w", err)
		}
		p = p[n:]
	}
	return total, nil
}

// Stdout returns a writer to the client's standard output.
func (r *Response) Stdout() io.Writer { return streamWriter{r, frameStdout} }

// Stderr returns a writer to the client's standard error.
func (r *Response) Stderr() io.Writer { return streamWriter{r, frameStderr} }

// TempDir makes a staging directory for files to stream, inside the
// database directory dir; the caller removes it.
func TempDir(dir string) (string, error) {
	t, err := os.MkdirTemp(dir, TempPrefix)
	if err != nil {
		return "", fmt.Errorf("control: staging directory in %s: %w", dir, err)
	}
	return t, nil
}

// SendFile streams the local file src to the client, which writes it at
// h.Path (and fails if it exists, unless h.Replace).
func (r *Response) SendFile(ctx context.Context, src string, h FileHeader) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("control: send %s: %w", src, err)
	}
	defer f.Close()
	if h.Mode == 0 {
		h.Mode = 0o644
	}
	hb, _ := json.Marshal(h)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.frameLocked(frameFile, hb, false); err != nil {
		return fmt.Errorf("control: send %s: client gone: %w", h.Path, err)
	}
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := f.Read(buf)
		if n > 0 {
			if err := r.frameLocked(frameData, buf[:n], false); err != nil {
				return fmt.Errorf("control: send %s: client gone: %w", h.Path, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("control: send %s: read %s: %w", h.Path, src, rerr)
		}
	}
	if err := r.frameLocked(frameEnd, nil, true); err != nil {
		return fmt.Errorf("control: send %s: client gone: %w", h.Path, err)
	}
	return nil
}
