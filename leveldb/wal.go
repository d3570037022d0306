package leveldb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The redo log (durusbdb.wal) makes a durable commit one fdatasync of a
// preallocated file instead of one of LevelDB's growing log (see the
// package documentation, "Durability"). This file holds its format: two
// header slots and a ring of records.
//
//	offset 0, 4096   header slots (the valid one with the higher gen wins)
//	offset 8192..    records, written in seq order around the ring
//
// A header slot: magic "DURWAL01", gen, epoch, startSeq, startOff, size
// (uint64 little-endian each), CRC-32C of those 48 bytes. It says where the
// records not yet known durable in LevelDB begin: the record of seq
// startSeq at startOff (or, when that one would not fit before the end, at
// the ring's start).
//
// A record: CRC-32C, payload length (uint32 each), epoch, seq (uint64
// each), then the payload: the commit's operations, each an op byte (1 put,
// 2 delete), the full LevelDB key and, for a put, the value, lengths as
// uvarints. The CRC covers everything after itself. A reader stops at the
// first record that fails its CRC, belongs to another epoch (written before
// the last open: stale bytes of an earlier lap) or does not carry the next
// seq: a record is acknowledged only after the fdatasync that follows its
// write, so every acknowledged record comes before that point.
// RedoLogName is the redo log's file name in a LevelDB directory: part of
// the database (backups copy it; after a crash it may hold acknowledged
// commits LevelDB lacks).
const RedoLogName = "durusbdb.wal"

const (
	walName       = RedoLogName
	walMagic      = "DURWAL01"
	walSlotSize   = 4096
	walDataStart  = 2 * walSlotSize
	walHeaderLen  = 8 + 5*8 + 4
	walRecHdrLen  = 4 + 4 + 8 + 8
	walMaxPayload = 1 << 30
	// walDefaultSize is the redo log's size at creation: room for about a
	// second of commits at this machine's rates between checkpoints.
	walDefaultSize = 8 << 20

	walOpPut    = 1
	walOpDelete = 2
)

// errWALFull reports that records do not fit in the ring before its tail:
// the caller checkpoints instead (LevelDB synced, ring emptied).
var errWALFull = errors.New("redo log full")

// walHeader is one header slot's contents.
type walHeader struct {
	gen, epoch, startSeq, startOff, size uint64
}

func (h walHeader) encode() []byte {
	b := make([]byte, walHeaderLen)
	copy(b, walMagic)
	for i, v := range []uint64{h.gen, h.epoch, h.startSeq, h.startOff, h.size} {
		binary.LittleEndian.PutUint64(b[8+8*i:], v)
	}
	binary.LittleEndian.PutUint32(b[48:], crc32.Checksum(b[:48], castagnoli))
	return b
}

// decodeWALHeader parses one slot; ok is false for anything but a whole,
// valid header.
func decodeWALHeader(b []byte) (h walHeader, ok bool) {
	if len(b) < walHeaderLen || string(b[:8]) != walMagic ||
		binary.LittleEndian.Uint32(b[48:]) != crc32.Checksum(b[:48], castagnoli) {
		return h, false
	}
	v := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8+8*i:]) }
	return walHeader{gen: v(0), epoch: v(1), startSeq: v(2), startOff: v(3), size: v(4)}, true
}

// walRecord is one recovered record.
type walRecord struct {
	seq     uint64
	payload []byte
}

// appendWALRecord appends the record of seq with payload to dst.
func appendWALRecord(dst []byte, epoch, seq uint64, payload []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, walRecHdrLen)...)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[n+4:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(dst[n+8:], epoch)
	binary.LittleEndian.PutUint64(dst[n+16:], seq)
	binary.LittleEndian.PutUint32(dst[n:], crc32.Checksum(dst[n+4:], castagnoli))
	return dst
}

// appendWALOp appends one operation to a record payload.
func appendWALOp(dst []byte, del bool, key, val []byte) []byte {
	if del {
		dst = append(dst, walOpDelete)
		dst = binary.AppendUvarint(dst, uint64(len(key)))
		return append(dst, key...)
	}
	dst = append(dst, walOpPut)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(len(val)))
	return append(dst, val...)
}

// walOp is one decoded operation of a payload.
type walOp struct {
	del      bool
	key, val []byte
}

// decodeWALOps parses a payload (the slices point into it).
func decodeWALOps(p []byte) ([]walOp, error) {
	var ops []walOp
	for len(p) > 0 {
		kind := p[0]
		p = p[1:]
		if kind != walOpPut && kind != walOpDelete {
			return nil, fmt.Errorf("unknown operation %d", kind)
		}
		key, rest, err := walBytes(p)
		if err != nil {
			return nil, err
		}
		p = rest
		op := walOp{del: kind == walOpDelete, key: key}
		if !op.del {
			if op.val, p, err = walBytes(p); err != nil {
				return nil, err
			}
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// walBytes reads one uvarint-prefixed byte string.
func walBytes(p []byte) (b, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return nil, nil, errors.New("operation cut short")
	}
	return p[k : k+int(n)], p[k+int(n):], nil
}

// walFile is the open redo log of a writable store. Its methods are called
// with Store.flushMu held.
type walFile struct {
	f    *os.File
	path string
	size int64
	hdr  walHeader // the last header made durable

	head    int64  // where the next record goes
	lap     uint64 // times head went back to the ring's start
	tailLap uint64 // lap of hdr.startOff
	last    uint64 // seq of the last record made durable (startSeq-1 when none)
}

// walState is what openWAL found.
type walState struct {
	hdr     walHeader
	records []walRecord // the records from hdr.startSeq on, in seq order
	fresh   bool        // no redo log yet (or one never written)
}

// readWAL reads the redo log at path: its header and every record from the
// header's start until the first that does not follow. A missing file is
// a fresh state.
func readWAL(path string) (walState, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return walState{fresh: true}, nil
	}
	if err != nil {
		return walState{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return walState{}, err
	}
	size := fi.Size()
	slots := make([]byte, walDataStart+walRecHdrLen)
	n, err := f.ReadAt(slots, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return walState{}, err
	}
	slots = slots[:n]
	var best walHeader
	found := false
	for _, off := range []int{0, walSlotSize} {
		if off+walHeaderLen > len(slots) {
			continue
		}
		if h, ok := decodeWALHeader(slots[off:]); ok && (!found || h.gen > best.gen) {
			best, found = h, true
		}
	}
	if !found {
		// Creation writes the zeros, then the header: a crash between
		// leaves no header and no record. Bytes where the first record
		// goes mean the headers were destroyed after records were written.
		if len(slots) > walDataStart {
			for _, c := range slots[walDataStart:] {
				if c != 0 {
					return walState{}, fmt.Errorf("%s: no valid header at offset 0 or %d, but a record at offset %d: %w", path, walSlotSize, walDataStart, errWALCorrupt)
				}
			}
		}
		return walState{fresh: true}, nil
	}
	if int64(best.size) != size || best.startOff < walDataStart || int64(best.startOff) > size {
		return walState{}, fmt.Errorf("%s: header (gen %d) says size %d, start offset %d; the file has %d bytes: %w", path, best.gen, best.size, best.startOff, size, errWALCorrupt)
	}
	st := walState{hdr: best}
	off, seq := int64(best.startOff), best.startSeq
	hdr := make([]byte, walRecHdrLen)
	for {
		rec, next, ok := readWALRecord(f, hdr, off, size, best.epoch, seq)
		if !ok && off != walDataStart {
			rec, next, ok = readWALRecord(f, hdr, walDataStart, size, best.epoch, seq)
		}
		if !ok {
			return st, nil
		}
		st.records = append(st.records, rec)
		off, seq = next, seq+1
	}
}

// errWALCorrupt marks a redo log that cannot be read as this package writes
// it; it is wrapped with kv.ErrCorrupt by the store.
var errWALCorrupt = errors.New("redo log damaged")

// readWALRecord reads the record at off if it is the one of epoch and seq.
func readWALRecord(f *os.File, hdr []byte, off, size int64, epoch, seq uint64) (walRecord, int64, bool) {
	if off+walRecHdrLen > size {
		return walRecord{}, 0, false
	}
	if _, err := f.ReadAt(hdr, off); err != nil {
		return walRecord{}, 0, false
	}
	n := int64(binary.LittleEndian.Uint32(hdr[4:]))
	if binary.LittleEndian.Uint64(hdr[8:]) != epoch || binary.LittleEndian.Uint64(hdr[16:]) != seq ||
		n > walMaxPayload || off+walRecHdrLen+n > size {
		return walRecord{}, 0, false
	}
	body := make([]byte, walRecHdrLen-4+n)
	if _, err := f.ReadAt(body, off+4); err != nil {
		return walRecord{}, 0, false
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(hdr) {
		return walRecord{}, 0, false
	}
	return walRecord{seq: seq, payload: body[walRecHdrLen-4:]}, off + walRecHdrLen + n, true
}

// createWAL writes a new redo log of size bytes at path (zeros, so that no
// later fdatasync allocates a block) and makes it durable. The caller
// writes the first header with reset.
func createWAL(path string, size int64) (*walFile, error) {
	tmp := path + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	if err := fsyncFile(filepath.Dir(path)); err != nil {
		return nil, err
	}
	ok = true
	return &walFile{f: f, path: path, size: size}, nil
}

// openWALFile opens an existing redo log for writing.
func openWALFile(path string, size int64) (*walFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &walFile{f: f, path: path, size: size}, nil
}

// reset makes the ring empty from startSeq on under a new epoch (after an
// open's replay, whose records are then in LevelDB and synced).
func (w *walFile) reset(prev walHeader, startSeq uint64) error {
	h := walHeader{gen: prev.gen + 1, epoch: prev.epoch + 1, startSeq: startSeq, startOff: walDataStart, size: uint64(w.size)}
	if err := w.writeHeader(h); err != nil {
		return err
	}
	w.head, w.lap, w.tailLap, w.last = walDataStart, 0, 0, startSeq-1
	return nil
}

// writeHeader writes h into the slot the current header is not in and
// fdatasyncs the file.
func (w *walFile) writeHeader(h walHeader) error {
	off := int64(h.gen%2) * walSlotSize
	if _, err := w.f.WriteAt(h.encode(), off); err != nil {
		return fmt.Errorf("write %s header: %w", w.path, err)
	}
	if err := syscall.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.path, err)
	}
	w.hdr = h
	return nil
}

// startAt moves the ring's start to off (a head position seen when lap was
// current), naming startSeq as the record found there: everything before
// it is durable in LevelDB.
func (w *walFile) startAt(startSeq uint64, off int64, lap uint64) error {
	h := w.hdr
	h.gen++
	h.startSeq, h.startOff = startSeq, uint64(off)
	if err := w.writeHeader(h); err != nil {
		return err
	}
	w.tailLap = lap
	return nil
}

// empty moves the ring's start to its head: every record written so far
// (and every commit up to and including seq last) is durable in LevelDB.
func (w *walFile) empty(last uint64) error {
	if err := w.startAt(last+1, w.head, w.lap); err != nil {
		return err
	}
	w.last = last
	return nil
}

// append writes the encoded records recs (ends[i] is where record i ends;
// their seqs follow w.last) and fdatasyncs them. It returns errWALFull,
// having written nothing, when they do not fit before the ring's tail.
func (w *walFile) append(recs []byte, ends []int, lastSeq uint64) error {
	type piece struct {
		off      int64
		from, to int
	}
	pieces := make([]piece, 0, 2)
	head, lap := w.head, w.lap
	tail := int64(w.hdr.startOff)
	from := 0
	for _, end := range ends {
		n := int64(end - from)
		switch {
		case lap == w.tailLap && head+n <= w.size:
			// fits before the end of the ring
		case lap == w.tailLap && walDataStart+n < tail:
			head, lap = walDataStart, lap+1
		case lap != w.tailLap && head+n < tail:
		default:
			return errWALFull
		}
		if k := len(pieces); k > 0 && pieces[k-1].off+int64(pieces[k-1].to-pieces[k-1].from) == head {
			pieces[k-1].to = end
		} else {
			pieces = append(pieces, piece{off: head, from: from, to: end})
		}
		head += n
		from = end
	}
	for _, p := range pieces {
		if _, err := w.f.WriteAt(recs[p.from:p.to], p.off); err != nil {
			return fmt.Errorf("write %s at offset %d: %w", w.path, p.off, err)
		}
	}
	if err := syscall.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", w.path, err)
	}
	w.head, w.lap, w.last = head, lap, lastSeq
	return nil
}

// close closes the file.
func (w *walFile) close() error { return w.f.Close() }
