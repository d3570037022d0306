package filestorage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Format is a Durus file format.
type Format int

// The formats a Reader can read (PROTOCOL.md §11.1).
const (
	// FormatEmpty is an empty file: an empty storage with 0 records.
	FormatEmpty Format = iota
	// FormatShelf is the Shelf format ("SHELF-1\n"), Durus 3.8 and later.
	FormatShelf
	// FormatDFS20 is the DFS20 format ("DFS20\0"), Durus 3.0–3.8 and
	// FileStorage2.
	FormatDFS20
)

// String returns "empty", "shelf" or "dfs20".
func (f Format) String() string {
	switch f {
	case FormatEmpty:
		return "empty"
	case FormatShelf:
		return "shelf"
	case FormatDFS20:
		return "dfs20"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Magic numbers of PROTOCOL.md §11.1.
const (
	shelfMagic  = "SHELF-1\n"
	dfs20Magic  = "DFS20\x00"
	dfs10Magic  = "DFS10\x00"
	sqliteMagic = "SQLite format 3\x00"
)

// MaxRecordSize is the largest record durusbdb can import (a load reply
// carries an int4 length).
const MaxRecordSize = 1<<32 - 1

// DefaultMaxIndexBytes is the default bound on a decompressed DFS20 index
// pickle.
const DefaultMaxIndexBytes = 4 << 30

// ReadOptions configures Open.
type ReadOptions struct {
	// IgnoreIncompleteTail makes Records stop without error at a final
	// transaction cut short by the end of the file (or an interrupted Shelf
	// commit), after yielding everything before it; Stats().Skipped reports
	// the skip. Other damage is still an error.
	IgnoreIncompleteTail bool
	// Force opens a file even if a running Durus writer holds its lock.
	// The Reader then reads a snapshot: the bytes present at Open (see
	// Reader.Forced). A snapshot may end inside a commit in progress;
	// combine with IgnoreIncompleteTail to import what precedes it.
	Force bool
	// MaxIndexBytes bounds the decompressed DFS20 index pickle; 0 means
	// DefaultMaxIndexBytes.
	MaxIndexBytes int64
}

// Skip describes an incomplete final transaction that Records ignored.
type Skip struct {
	Offset int64  // start of the skipped transaction
	Bytes  int64  // bytes from Offset to the end of the file
	Reason string // the damage that was ignored
}

// ReadStats is a snapshot of a Reader's progress.
type ReadStats struct {
	Format  Format
	Size    int64 // file size at Open; nothing beyond it is read
	Records int64 // records yielded so far (an oid may be counted twice)
	Bytes   int64 // record bytes yielded so far
	Offset  int64 // file offset reached by the scan
	Done    bool  // the last Records call finished without error
	Skipped *Skip // non-nil when an incomplete tail was ignored
}

// Reader streams the records of a Durus Shelf or DFS20 file, read-only. It
// holds a shared flock on the file until Close, which keeps Durus writers
// out meanwhile. Records must not be called concurrently with itself or
// Close; Stats may be called from any goroutine at any time.
type Reader struct {
	path   string
	f      *os.File // nil for readers over memory (tests, fuzzing)
	ra     io.ReaderAt
	size   int64
	format Format
	forced bool
	opts   ReadOptions

	shelf shelfHeader
	dfs   dfsHeader

	records, bytes, offset atomic.Int64
	done                   atomic.Bool
	skipped                atomic.Pointer[Skip]

	mu     sync.Mutex
	closed bool
}

// Open opens a Durus file for import, detects its format by magic
// (PROTOCOL.md §11.1) and checks its header (and, for DFS20, decodes and
// checks the index). DFS10, SQLite and unknown files give a *FormatError
// (ErrUnsupported) showing the first bytes; an empty file is FormatEmpty
// with 0 records. A file locked by a running Durus writer
// (flock(LOCK_SH|LOCK_NB) fails) gives ErrLocked unless opts.Force. The file
// size is fixed at Open: bytes appended later are not read.
func Open(path string, opts ReadOptions) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("filestorage: open %s: %w", path, err)
	}
	forced := false
	if err := lockShared(f); err != nil {
		if !errors.Is(err, errWouldBlock) {
			f.Close()
			return nil, fmt.Errorf("filestorage: lock %s: %w", path, err)
		}
		if !opts.Force {
			f.Close()
			return nil, fmt.Errorf("filestorage: %s: %w (stop the Durus server first, or force a snapshot read)", path, ErrLocked)
		}
		forced = true
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("filestorage: stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("filestorage: %s: not a regular file", path)
	}
	r, err := newReader(path, f, fi.Size(), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.f = f
	r.forced = forced
	return r, nil
}

// newReader detects the format and checks the header of the size bytes of
// ra.
func newReader(path string, ra io.ReaderAt, size int64, opts ReadOptions) (*Reader, error) {
	if opts.MaxIndexBytes <= 0 {
		opts.MaxIndexBytes = DefaultMaxIndexBytes
	}
	r := &Reader{path: path, ra: ra, size: size, opts: opts}
	head := make([]byte, min(size, 16))
	if n, err := ra.ReadAt(head, 0); n < len(head) {
		return nil, fmt.Errorf("filestorage: read %s: %w", path, err)
	}
	switch {
	case size == 0:
		r.format = FormatEmpty
	case bytes.HasPrefix(head, []byte(shelfMagic)):
		r.format = FormatShelf
		if err := r.openShelf(); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(head, []byte(dfs20Magic)):
		r.format = FormatDFS20
		if err := r.openDFS20(); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(head, []byte(dfs10Magic)):
		return nil, &FormatError{Path: path, Format: "DFS10", Head: head}
	case bytes.HasPrefix(head, []byte(sqliteMagic)):
		return nil, &FormatError{Path: path, Format: "SQLite", Head: head}
	default:
		return nil, &FormatError{Path: path, Format: "unknown", Head: head}
	}
	r.offset.Store(0)
	return r, nil
}

// Path is the file name given to Open.
func (r *Reader) Path() string { return r.path }

// Format is the detected format.
func (r *Reader) Format() Format { return r.format }

// Size is the file size at Open.
func (r *Reader) Size() int64 { return r.size }

// Forced reports that a running Durus writer held the file's lock and
// ReadOptions.Force made Open go ahead: the Reader reads the snapshot of the
// bytes present at Open, which may end inside a commit in progress.
func (r *Reader) Forced() bool { return r.forced }

// Stats returns the progress of the current or last Records call. Safe to
// call from any goroutine.
func (r *Reader) Stats() ReadStats {
	return ReadStats{
		Format:  r.format,
		Size:    r.size,
		Records: r.records.Load(),
		Bytes:   r.bytes.Load(),
		Offset:  r.offset.Load(),
		Done:    r.done.Load(),
		Skipped: r.skipped.Load(),
	}
}

// Close releases the lock and closes the file. Calling it twice is fine.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.f != nil {
		return r.f.Close() // closing drops the flock
	}
	return nil
}

// Records streams the file's records in file order to yield, validating as
// it goes (R1–R4 and the checks of PROTOCOL.md §11.2/§11.3), with memory
// bounded by the largest record plus fixed buffers (and, for DFS20, the
// decoded index).
//
// An oid may be yielded more than once: the LAST yield of an oid is its
// current record, so a consumer that overwrites by oid ends with exactly the
// records Durus's FileStorage.load returns. Records Durus does not read
// (Shelf base records the offset map does not point at, DFS20 entries before
// the index that the index does not name) are not yielded. Each appended
// Shelf transaction and each DFS20 transaction after the index is checked to
// be complete and well formed before any of its records is yielded, so with
// IgnoreIncompleteTail nothing of a skipped transaction reaches yield.
//
// Each rec is a fresh slice the consumer may keep. An error from yield stops
// the scan and is returned wrapped (errors.Is still matches it). Damage gives
// a *DamageError (ErrDamaged) naming the file and offset; records yielded
// before it are not withdrawn, so the consumer must discard or mark its
// destination. Records may be called again to rescan.
func (r *Reader) Records(ctx context.Context, yield func(rec []byte) error) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	r.records.Store(0)
	r.bytes.Store(0)
	r.offset.Store(0)
	r.done.Store(false)
	r.skipped.Store(nil)
	var err error
	switch r.format {
	case FormatShelf:
		err = r.readShelf(ctx, yield)
	case FormatDFS20:
		err = r.readDFS20(ctx, yield)
	}
	var de *DamageError
	if errors.As(err, &de) && de.Incomplete && r.opts.IgnoreIncompleteTail {
		r.skipped.Store(&Skip{Offset: de.Offset, Bytes: r.size - de.Offset, Reason: de.Error()})
		err = nil
	}
	if err == nil {
		r.offset.Store(r.size)
		r.done.Store(true)
	}
	return err
}

// emit hands one record to yield and counts it.
func (r *Reader) emit(ctx context.Context, yield func([]byte) error, rec []byte, end int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestorage: %s: stopped at offset %d: %w", r.path, end, err)
	}
	if err := yield(rec); err != nil {
		return fmt.Errorf("filestorage: %s: record oid %d ending at offset %d: %w", r.path, binary.BigEndian.Uint64(rec), end, err)
	}
	r.records.Add(1)
	r.bytes.Add(int64(len(rec)))
	r.offset.Store(end)
	return nil
}

func (r *Reader) damage(off int64, format string, args ...any) *DamageError {
	return &DamageError{Path: r.path, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (r *Reader) damageOID(off int64, oid uint64, cause error, format string, args ...any) *DamageError {
	return &DamageError{Path: r.path, Offset: off, OID: oid, HasOID: true, Err: cause, Reason: fmt.Sprintf(format, args...)}
}

// errShort is returned by window.at for a range past the snapshot size.
var errShort = errors.New("past the end of the file")

// window is a read buffer over the file for forward scans.
type window struct {
	ra   io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
}

func newWindow(ra io.ReaderAt, size int64, bufSize int) *window {
	return &window{ra: ra, size: size, buf: make([]byte, min(int64(bufSize), size))}
}

// at returns the n bytes at off, valid until the next call; errShort if
// they lie past the end of the snapshot.
func (w *window) at(off int64, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > w.size || n > w.size-off {
		return nil, errShort
	}
	if off >= w.off && off+n <= w.off+int64(w.n) {
		return w.buf[off-w.off : off-w.off+n], nil
	}
	if n > int64(len(w.buf)) {
		b := make([]byte, n)
		if err := w.readAt(b, off); err != nil {
			return nil, err
		}
		return b, nil
	}
	m := min(int64(len(w.buf)), w.size-off)
	w.n = 0
	if err := w.readAt(w.buf[:m], off); err != nil {
		return nil, err
	}
	w.off, w.n = off, int(m)
	return w.buf[:n], nil
}

// fresh returns a new slice holding the n bytes at off.
func (w *window) fresh(off, n int64) ([]byte, error) {
	if n > int64(len(w.buf))/2 {
		if off < 0 || n < 0 || off > w.size || n > w.size-off {
			return nil, errShort
		}
		b := make([]byte, n)
		if err := w.readAt(b, off); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := w.at(off, n)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

func (w *window) u64(off int64) (uint64, error) {
	b, err := w.at(off, 8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func (w *window) u32(off int64) (uint32, error) {
	b, err := w.at(off, 4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

func (w *window) readAt(b []byte, off int64) error {
	n, err := w.ra.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d (did the file shrink?): %w", len(b), off, err)
}

// ioErr wraps an I/O error (not damage) with the file name.
func (r *Reader) ioErr(err error) error {
	return fmt.Errorf("filestorage: %s: %w", r.path, err)
}
