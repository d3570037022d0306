package control

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/internal/staging"
)

// maxFrame bounds a frame's payload (the server sends at most 1 MiB).
const maxFrame = 16 << 20

// FileError is the failure of this client to write a file the server sent
// (export's OUT, the files of a LevelDB backup): the exchange with the
// server worked, the local write did not. Path is the file as the request
// named it; Err is the cause (syscall.ENOSPC: its file system is full).
type FileError struct {
	Path string
	Err  error
}

// Error names the file and the cause; for a full file system it says so
// first, and what to do.
func (e *FileError) Error() string {
	if errors.Is(e.Err, syscall.ENOSPC) {
		return fmt.Sprintf("no space left on device writing %s (%v): free space on its file system (df %s), or choose another place for it",
			e.Path, e.Err, filepath.Dir(e.Path))
	}
	return fmt.Sprintf("write %s: %v", e.Path, e.Err)
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// Run sends req to the server of the database directory dir and copies
// its output to stdout and stderr, writing the files it sends. It returns
// the command's Exit. The error is non-nil if no server answers (it then
// wraps ErrNoServer), the server refused the connection (ErrRefused), or
// the exchange or a file write failed; a file write's error is a
// *FileError, not wrapped in the control socket's address.
func Run(ctx context.Context, dir string, req Request, stdout, stderr io.Writer) (Exit, error) {
	return client{}.run(ctx, dir, req, stdout, stderr)
}

// client is the side of Run: the zero client is Run's; its fields are
// what a test substitutes (each nil for the production default).
type client struct {
	// partWriter is what the data of a received file is written
	// through, given its temporary file; nil: the file itself (a test
	// substitutes a failing writer).
	partWriter func(f *os.File) io.Writer
}

// run is Run with c's dependencies.
func (c client) run(ctx context.Context, dir string, req Request, stdout, stderr io.Writer) (Exit, error) {
	addr, err := SocketAddr(dir)
	if err != nil {
		return Exit{}, err
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := d.DialContext(dctx, "unix", addr)
	cancel()
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return Exit{}, fmt.Errorf("%w %s (%w)", ErrNoServer, addr, err)
		}
		return Exit{}, fmt.Errorf("control: connect to %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return Exit{}, fmt.Errorf("control: request: %w", err)
	}
	// A server that refuses the client answers without reading the
	// request: a failed write still leaves its answer to read.
	_, werr := conn.Write(append(b, '\n'))
	ex, err := c.readResponse(bufio.NewReaderSize(conn, 256<<10), stdout, stderr)
	if err != nil && werr != nil {
		return Exit{}, fmt.Errorf("control: send the request to %s: %w", addr, werr)
	}
	if err != nil && ctx.Err() != nil {
		return ex, ctx.Err()
	}
	var fe *FileError
	if err != nil && !errors.As(err, &fe) {
		return ex, fmt.Errorf("control: %s: %w", addr, err)
	}
	return ex, err
}

// readResponse reads frames until the Exit frame.
func (c client) readResponse(r io.Reader, stdout, stderr io.Writer) (Exit, error) {
	var out *fileOut
	defer func() {
		if out != nil {
			out.abort()
		}
	}()
	var h [5]byte
	buf := make([]byte, 0, 256<<10)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Exit{}, fmt.Errorf("the server closed the connection before the end: %w", err)
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > maxFrame {
			return Exit{}, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return Exit{}, fmt.Errorf("the server closed the connection in a frame: %w", err)
		}
		switch h[0] {
		case frameStdout:
			stdout.Write(p)
		case frameStderr:
			stderr.Write(p)
		case frameFile:
			var fh FileHeader
			if err := json.Unmarshal(p, &fh); err != nil || out != nil {
				return Exit{}, fmt.Errorf("%w: bad file header %q", ErrProtocol, p)
			}
			o, err := createOut(fh, slog.New(slog.NewTextHandler(stderr, nil)))
			if err != nil {
				return Exit{}, err
			}
			if c.partWriter != nil {
				o.w = c.partWriter(o.f)
			}
			out = o
		case frameData:
			if out == nil {
				return Exit{}, fmt.Errorf("%w: file data outside a file", ErrProtocol)
			}
			if _, err := out.w.Write(p); err != nil {
				return Exit{}, &FileError{Path: out.h.Path, Err: err}
			}
		case frameEnd:
			if out == nil {
				return Exit{}, fmt.Errorf("%w: end of file outside a file", ErrProtocol)
			}
			if err := out.finish(); err != nil {
				return Exit{}, err
			}
			out = nil
		case frameExit:
			var ex Exit
			if err := json.Unmarshal(p, &ex); err != nil {
				return Exit{}, fmt.Errorf("%w: bad exit frame %q", ErrProtocol, p)
			}
			if out != nil {
				return ex, fmt.Errorf("%w: exit inside a file", ErrProtocol)
			}
			if ex.Refused {
				return ex, fmt.Errorf("%w: %s", ErrRefused, ex.Error)
			}
			return ex, nil
		default:
			return Exit{}, fmt.Errorf("%w: frame type %q", ErrProtocol, h[0])
		}
	}
}

// fileOut is a file being received: written to a temporary name beside
// its path, renamed into place once complete and synced.
type fileOut struct {
	h   FileHeader
	tmp string
	f   *os.File
	w   io.Writer // the data's way to f (f, or client.partWriter's)
}

// createOut starts receiving the file of h: a flocked temporary file
// beside its path, after removing the ones of receptions that were killed
// (unlocked: see staging.RemoveStale), each with a warning on log.
func createOut(h FileHeader, log *slog.Logger) (*fileOut, error) {
	if h.Path == "" {
		return nil, fmt.Errorf("%w: file without a path", ErrProtocol)
	}
	if !h.Replace {
		if _, err := os.Lstat(h.Path); err == nil {
			return nil, &FileError{Path: h.Path, Err: os.ErrExist}
		}
	}
	if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
		return nil, &FileError{Path: h.Path, Err: err}
	}
	f, err := staging.TempFile(filepath.Dir(h.Path), "."+filepath.Base(h.Path)+".part-", "transfer of "+h.Path, log)
	if err != nil {
		return nil, &FileError{Path: h.Path, Err: err}
	}
	if err := f.Chmod(os.FileMode(h.Mode & 0o777)); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, &FileError{Path: h.Path, Err: err}
	}
	return &fileOut{h: h, tmp: f.Name(), f: f, w: f}, nil
}

func (o *fileOut) finish() error {
	err := o.f.Sync()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !o.h.Replace {
		// Refuse a file that appeared meanwhile: link fails if it exists.
		if err = os.Link(o.tmp, o.h.Path); err == nil {
			err = os.Remove(o.tmp)
		}
	} else if err == nil {
		err = os.Rename(o.tmp, o.h.Path)
	}
	if err != nil {
		os.Remove(o.tmp)
		return &FileError{Path: o.h.Path, Err: err}
	}
	if d, derr := os.Open(filepath.Dir(o.h.Path)); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (o *fileOut) abort() {
	o.f.Close()
	os.Remove(o.tmp)
}
