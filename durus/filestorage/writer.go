package filestorage

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"syscall"

	"github.com/durusbdb/durusbdb/durus/pickle"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/staging"
)

// WriteOptions configures WriteShelf and WriteDFS20.
type WriteOptions struct {
	// Force replaces an existing target. A target locked by a running
	// Durus writer is refused (ErrLocked) even when forced.
	Force bool
	// MaxMapBytes refuses (ErrTooLarge) a Shelf export whose offset map
	// (one word per oid below largest oid + 2) would exceed this many
	// bytes; 0 means no limit. ShelfSize computes the size beforehand.
	MaxMapBytes int64
	// Perm is the final file's permission bits; 0 means 0644.
	Perm os.FileMode
	// Progress, if set, is called from the writing goroutine every 65536
	// records and once more when the records are written.
	Progress func(WriteStats)
	// Log receives a warning for each temporary file of an interrupted
	// export that the write removes; nil discards them.
	Log *slog.Logger

	// hook, for tests, is called at each stage; an error aborts the write.
	hook func(stage string) error
}

// WriteStats describes an export.
type WriteStats struct {
	Path        string
	Format      Format
	Records     int64  // records written
	RecordBytes int64  // sum of record lengths
	MaxOID      uint64 // largest oid written (0 when no records)
	Size        int64  // final file size
	// Shelf only: MapWords is N (largest oid + 2, or 0), WordBytes is W,
	// Holes the number of oids below N without a record.
	MapWords  int64
	WordBytes int64
	Holes     int64
}

// ShelfSize returns the size of the Shelf file WriteShelf writes for count
// records of recordBytes total bytes whose largest oid is maxOID (ignored
// when count is 0), and the size of its offset map. Export reports it
// before writing (PROTOCOL.md §11.6).
func ShelfSize(count, recordBytes int64, maxOID uint64) (fileSize, mapBytes int64, err error) {
	s := 16 + 16*count + recordBytes
	var n uint64
	if count > 0 {
		if maxOID > math.MaxInt64-2 {
			return 0, 0, fmt.Errorf("filestorage: shelf offset map for oid %d: %w", maxOID, ErrTooLarge)
		}
		n = maxOID + 2
	}
	w := wordBytes(uint64(s) + n + 1)
	if n > uint64(math.MaxInt64-s-24)/uint64(w) {
		return 0, 0, fmt.Errorf("filestorage: shelf offset map of %d words: %w", n, ErrTooLarge)
	}
	mapBytes = int64(n) * int64(w)
	return s + 24 + mapBytes, mapBytes, nil
}

// wordBytes is the length of the shortest big-endian representation of v.
func wordBytes(v uint64) int {
	return max(1, (bits.Len64(v)+7)/8)
}

// WriteShelf writes the records scan yields, in strictly ascending oid
// order, as a Shelf file (PROTOCOL.md §11.2 "Writing"): every record in the
// base transaction, L0 patched, offset map with hole chain and W computed, no
// appended transactions — exactly what Durus's own pack writes. Memory use
// is constant. Each record is checked against R1–R4 (record.ParseFor).
//
// The file is written to a temporary file in the target directory under
// flock(LOCK_EX|LOCK_NB), fsynced, moved to path, and the directory fsynced
// (PROTOCOL.md §11.6). An existing path is refused (ErrExists) unless
// opts.Force. On any error, including an error returned by scan or yield
// (for cancellation), the temporary file is removed and nothing exists
// under path; a process killed while writing leaves only a hidden
// ".<name>.tmp-*" file, never a file under path.
func WriteShelf(path string, opts WriteOptions, scan func(yield func(oid uint64, rec []byte) error) error) (WriteStats, error) {
	return writeFile(path, opts, FormatShelf, scan)
}

// WriteDFS20 is WriteShelf for the DFS20 format (PROTOCOL.md §11.3
// "Writing"): magic, one transaction with every record in ascending oid
// order and its terminator, then the index as a zlib-compressed protocol-2
// pickle with _codecs.encode keys, which Durus reads on Python 2 and 3.
func WriteDFS20(path string, opts WriteOptions, scan func(yield func(oid uint64, rec []byte) error) error) (WriteStats, error) {
	return writeFile(path, opts, FormatDFS20, scan)
}

// writeFile is WriteShelf and WriteDFS20: it writes the records of scan in
// format to a locked temporary file beside path, then publishes it as path.
func writeFile(path string, opts WriteOptions, format Format, scan func(yield func(oid uint64, rec []byte) error) error) (st WriteStats, err error) {
	st = WriteStats{Path: path, Format: format}
	if opts.Perm == 0 {
		opts.Perm = 0o644
	}
	hook := func(stage string) error {
		if opts.hook != nil {
			return opts.hook(stage)
		}
		return nil
	}
	old, err := lockTarget(path, opts.Force)
	if err != nil {
		return st, err
	}
	if old != nil {
		defer old.Close()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// A locked temporary file beside path; those of exports to path that
	// were killed (unlocked) are removed first.
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tmp, err := staging.TempFile(dir, "."+base+".tmp-", "export", log)
	if err != nil {
		return st, fmt.Errorf("filestorage: export to %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if format == FormatShelf {
		err = writeShelfBody(tmp, &st, opts, hook, scan)
	} else {
		err = writeDFS20Body(tmp, &st, opts, hook, scan)
	}
	if err != nil {
		return st, err
	}
	if err := publish(tmp, path, dir, opts, hook); err != nil {
		return st, err
	}
	return st, nil
}

// lockTarget refuses an existing path unless force, and then holds an
// exclusive lock on it (ErrLocked when a Durus writer has it); the caller
// closes the returned file, nil when path does not exist, after the rename.
func lockTarget(path string, force bool) (*os.File, error) {
	_, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("filestorage: export to %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("filestorage: export to %s: %w (the export is one file: name a file in the directory)", path, syscall.EISDIR)
	}
	if !force {
		return nil, fmt.Errorf("filestorage: export to %s: %w", path, ErrExists)
	}
	old, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("filestorage: export to %s: %w", path, err)
	}
	if err := lockExclusive(old); err != nil {
		old.Close()
		if errors.Is(err, errWouldBlock) {
			err = ErrLocked
		}
		return nil, fmt.Errorf("filestorage: export to %s: %w", path, err)
	}
	return old, nil
}

// publish makes the written temporary file tmp durable under path in dir:
// permissions, fsync, rename (refusing a path that appeared meanwhile
// unless opts.Force), directory fsync, close.
func publish(tmp *os.File, path, dir string, opts WriteOptions, hook func(string) error) error {
	tmpName := tmp.Name()
	if err := tmp.Chmod(opts.Perm); err != nil {
		return fmt.Errorf("filestorage: export to %s: %w", path, err)
	}
	if err := hook("sync"); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("filestorage: fsync %s: %w", tmpName, err)
	}
	if err := hook("rename"); err != nil {
		return err
	}
	if err := moveIntoPlace(tmpName, path, opts.Force); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil && !errors.Is(serr, syscall.EINVAL) {
			tmp.Close()
			return fmt.Errorf("filestorage: fsync directory %s: %w", dir, serr)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("filestorage: close %s: %w", path, err)
	}
	return nil
}

// moveIntoPlace renames tmpName to path; unless force it refuses
// (ErrExists) a path that exists, by a hard link where the file system has
// them and by a check then rename where it has not.
func moveIntoPlace(tmpName, path string, force bool) error {
	if force {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("filestorage: export to %s: %w", path, err)
		}
		return nil
	}
	err := os.Link(tmpName, path)
	switch {
	case err == nil:
		os.Remove(tmpName)
		return nil
	case errors.Is(err, os.ErrExist):
		return fmt.Errorf("filestorage: export to %s: %w", path, ErrExists)
	}
	// No hard links here: check, then rename.
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("filestorage: export to %s: %w", path, ErrExists)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("filestorage: export to %s: %w", path, err)
	}
	return nil
}

// collect runs scan, checking order and R1–R4, and writes each record with
// put.
func collect(st *WriteStats, opts WriteOptions, scan func(yield func(oid uint64, rec []byte) error) error, put func(oid uint64, rec []byte) error) error {
	return scan(func(oid uint64, rec []byte) error {
		if st.Records > 0 && oid <= st.MaxOID {
			return fmt.Errorf("filestorage: export oid %d after oid %d: %w", oid, st.MaxOID, ErrOrder)
		}
		if _, err := record.ParseFor(oid, rec); err != nil {
			return fmt.Errorf("filestorage: export oid %d: %w", oid, err)
		}
		if err := put(oid, rec); err != nil {
			return err
		}
		st.Records++
		st.RecordBytes += int64(len(rec))
		st.MaxOID = oid
		if opts.Progress != nil && st.Records&0xFFFF == 0 {
			opts.Progress(*st)
		}
		return nil
	})
}

// writeShelfBody writes the Shelf file to f: magic, base records, offset
// map, then L0 patched in.
func writeShelfBody(f *os.File, st *WriteStats, opts WriteOptions, hook func(string) error, scan func(yield func(oid uint64, rec []byte) error) error) error {
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.WriteString(shelfMagic)
	bw.Write(make([]byte, 8)) // L0, patched below
	var hdr [16]byte
	err := collect(st, opts, scan, func(oid uint64, rec []byte) error {
		binary.BigEndian.PutUint64(hdr[:8], uint64(8+len(rec)))
		binary.BigEndian.PutUint64(hdr[8:], oid)
		bw.Write(hdr[:])
		_, err := bw.Write(rec)
		if err != nil {
			return writeErr(f.Name(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if opts.Progress != nil {
		opts.Progress(*st)
	}
	if err := hook("base"); err != nil {
		return err
	}
	size, mapBytes, err := ShelfSize(st.Records, st.RecordBytes, st.MaxOID)
	if err != nil {
		return err
	}
	if opts.MaxMapBytes > 0 && mapBytes > opts.MaxMapBytes {
		return fmt.Errorf("filestorage: shelf offset map of %d bytes exceeds the limit of %d: %w", mapBytes, opts.MaxMapBytes, ErrTooLarge)
	}
	s := 16 + 16*st.Records + st.RecordBytes
	var n int64
	if st.Records > 0 {
		n = int64(st.MaxOID) + 2
	}
	w := int64(wordBytes(uint64(s) + uint64(n) + 1))
	st.MapWords, st.WordBytes, st.Holes = n, w, n-st.Records
	if err := writeShelfMap(f, bw, s, n, w); err != nil {
		return err
	}
	if err := hook("map"); err != nil {
		return err
	}
	var l0 [8]byte
	binary.BigEndian.PutUint64(l0[:], uint64(s-16))
	if _, err := f.WriteAt(l0[:], 8); err != nil {
		return writeErr(f.Name(), err)
	}
	st.Size = size
	return nil
}

// writeShelfMap writes, after the base ending at s, the offset map of n
// words of w bytes: its header, then the words, found by walking the base
// just written (ascending oids) and stitching the hole chain as Durus's
// OffsetMap.gen_stitch does.
func writeShelfMap(f *os.File, bw *bufio.Writer, s, n, w int64) error {
	var mh [24]byte
	binary.BigEndian.PutUint64(mh[0:], uint64(16+w*n))
	binary.BigEndian.PutUint64(mh[8:], uint64(w))
	binary.BigEndian.PutUint64(mh[16:], uint64(n))
	bw.Write(mh[:])
	if err := bw.Flush(); err != nil {
		return writeErr(f.Name(), err)
	}
	base := &walker{r: bufio.NewReaderSize(io.NewSectionReader(f, 16, s-16), 1<<20), off: 16, shelf: true}
	nextOID, nextOff, have, err := base.next()
	if err != nil {
		return fmt.Errorf("filestorage: reread %s: %w", f.Name(), err)
	}
	prev := n - 1
	buf := make([]byte, 0, 64<<10)
	for j := range n {
		var v uint64
		if have && nextOID == uint64(j) {
			v = uint64(nextOff)
			if nextOID, nextOff, have, err = base.next(); err != nil {
				return fmt.Errorf("filestorage: reread %s: %w", f.Name(), err)
			}
		} else {
			v = uint64(s + prev)
			prev = j
		}
		for k := w - 1; k >= 0; k-- {
			buf = append(buf, byte(v>>(8*uint(k))))
		}
		if len(buf) >= cap(buf)-8 {
			if _, err := bw.Write(buf); err != nil {
				return writeErr(f.Name(), err)
			}
			buf = buf[:0]
		}
	}
	if _, err := bw.Write(buf); err != nil {
		return writeErr(f.Name(), err)
	}
	if err := bw.Flush(); err != nil {
		return writeErr(f.Name(), err)
	}
	return nil
}

// walker reads back the record headers of a region just written: Shelf
// records (int8 RL, name) or DFS20 entries (int4 RL, record; RL 0 ends).
type walker struct {
	r     *bufio.Reader
	off   int64
	shelf bool
}

// next returns the oid and offset of the next record; ok is false at the end.
func (w *walker) next() (oid uint64, off int64, ok bool, err error) {
	off = w.off
	var h [16]byte
	hl := 16
	if !w.shelf {
		hl = 12
	}
	if _, err := io.ReadFull(w.r, h[:hl]); err != nil {
		if err == io.EOF {
			return 0, off, false, nil
		}
		return 0, off, false, err
	}
	var rest int64
	if w.shelf {
		rl := int64(binary.BigEndian.Uint64(h[:8]))
		oid, rest = binary.BigEndian.Uint64(h[8:16]), rl-8
		w.off += 8 + rl
	} else {
		rl := int64(binary.BigEndian.Uint32(h[:4]))
		if rl == 0 {
			return 0, off, false, nil
		}
		oid, rest = binary.BigEndian.Uint64(h[4:12]), rl-8
		w.off += 4 + rl
	}
	for rest > 0 {
		d, err := w.r.Discard(int(min(rest, 1<<30)))
		rest -= int64(d)
		if err != nil {
			return 0, off, false, err
		}
	}
	return oid, off, true, nil
}

// countWriter counts bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeDFS20Body(f *os.File, st *WriteStats, opts WriteOptions, hook func(string) error, scan func(yield func(oid uint64, rec []byte) error) error) error {
	bw := bufio.NewWriterSize(f, 1<<20)
	bw.WriteString(dfs20Magic)
	bw.Write(make([]byte, 8)) // X, patched below
	var hdr [4]byte
	err := collect(st, opts, scan, func(oid uint64, rec []byte) error {
		if int64(len(rec)) > MaxRecordSize {
			return fmt.Errorf("filestorage: export oid %d: record of %d bytes: %w", oid, len(rec), ErrTooLarge)
		}
		binary.BigEndian.PutUint32(hdr[:], uint32(len(rec)))
		bw.Write(hdr[:])
		if _, err := bw.Write(rec); err != nil {
			return writeErr(f.Name(), err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if opts.Progress != nil {
		opts.Progress(*st)
	}
	if err := hook("base"); err != nil {
		return err
	}
	end := 14 + 4*st.Records + st.RecordBytes // end of the last entry
	bw.Write([]byte{0, 0, 0, 0})              // terminator
	x := end + 4
	bw.Write(make([]byte, 8)) // K, patched below
	if err := bw.Flush(); err != nil {
		return writeErr(f.Name(), err)
	}
	cw := &countWriter{w: bw}
	zw, _ := zlib.NewWriterLevel(cw, zlib.BestSpeed)
	enc := pickle.NewIndexEncoder(zw)
	entries := &walker{r: bufio.NewReaderSize(io.NewSectionReader(f, 14, end-14), 1<<20), off: 14}
	for {
		oid, off, ok, err := entries.next()
		if err != nil {
			return fmt.Errorf("filestorage: reread %s: %w", f.Name(), err)
		}
		if !ok {
			break
		}
		if err := enc.Add(oid, off); err != nil {
			return fmt.Errorf("filestorage: index of %s: %w", f.Name(), err)
		}
	}
	if err := enc.Close(); err != nil {
		return writeErr(f.Name(), err)
	}
	if err := zw.Close(); err != nil {
		return writeErr(f.Name(), err)
	}
	if err := bw.Flush(); err != nil {
		return writeErr(f.Name(), err)
	}
	if err := hook("map"); err != nil {
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(cw.n))
	if _, err := f.WriteAt(b[:], x); err != nil {
		return writeErr(f.Name(), err)
	}
	binary.BigEndian.PutUint64(b[:], uint64(x))
	if _, err := f.WriteAt(b[:], 6); err != nil {
		return writeErr(f.Name(), err)
	}
	st.Size = x + 8 + cw.n
	return nil
}

// writeErr wraps an error of writing the file name, which names it once:
// an *fs.PathError of the file already says "write NAME: ...".
func writeErr(name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == name {
		return fmt.Errorf("filestorage: %w", err)
	}
	return fmt.Errorf("filestorage: write %s: %w", name, err)
}
