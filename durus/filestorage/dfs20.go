package filestorage

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/durusbdb/durusbdb/durus/pickle"
	"github.com/durusbdb/durusbdb/durus/record"
)

// dfsHeader holds the checked layout and index of a DFS20 file
// (PROTOCOL.md §11.3).
type dfsHeader struct {
	x        int64            // offset of the index record
	k        int64            // compressed index length
	index    map[uint64]int64 // oid -> entry offset, every value in [14, x)
	txnStart int64            // x + 8 + k
}

// openDFS20 checks steps 1–2 of PROTOCOL.md §11.3 "Reading": header, index
// record, index values in range. Whether each value names an entry of its
// oid is checked by the scan.
func (r *Reader) openDFS20() error {
	w := newWindow(r.ra, r.size, 64)
	x, err := w.u64(6)
	if err != nil {
		return r.damage(6, "file of %d bytes ends inside the DFS20 header", r.size)
	}
	if x < 14 || x > uint64(r.size) || int64(x)+8 > r.size {
		return r.damage(6, "index offset %d is not within the file (14 ≤ X, X + 8 ≤ %d)", x, r.size)
	}
	k, _ := w.u64(int64(x))
	if k > uint64(r.size) || int64(x)+8+int64(k) > r.size {
		return r.damage(int64(x), "index record of %d bytes runs past the end of the file (%d bytes)", k, r.size)
	}
	h := dfsHeader{x: int64(x), k: int64(k), txnStart: int64(x) + 8 + int64(k)}
	zw := newWindow(r.ra, r.size, 0)
	comp, err := zw.fresh(h.x+8, h.k)
	if err != nil {
		return r.ioErr(err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(comp))
	if err != nil {
		return &DamageError{Path: r.path, Offset: h.x, Reason: "index is not a zlib stream", Err: err}
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(zr, r.opts.MaxIndexBytes+1))
	if err != nil {
		return &DamageError{Path: r.path, Offset: h.x, Reason: "index does not decompress", Err: err}
	}
	if n > r.opts.MaxIndexBytes {
		return &DamageError{Path: r.path, Offset: h.x, Err: ErrTooLarge,
			Reason: fmt.Sprintf("decompressed index exceeds %d bytes", r.opts.MaxIndexBytes)}
	}
	comp = nil
	idx, err := pickle.DecodeIndex(buf.Bytes())
	if err != nil {
		return &DamageError{Path: r.path, Offset: h.x, Reason: "index pickle", Err: err}
	}
	for _, oid := range slices.Sorted(maps.Keys(idx)) {
		if v := idx[oid]; v < 14 || v >= h.x {
			return r.damageOID(h.x, oid, nil, "index offset %d for oid %d is outside [14, %d)", v, oid, h.x)
		}
	}
	h.index = idx
	r.dfs = h
	return nil
}

// readDFS20 streams a DFS20 file (PROTOCOL.md §11.3): the entries before
// the index that the index names, then the transactions after it.
func (r *Reader) readDFS20(ctx context.Context, yield func([]byte) error) error {
	w := newWindow(r.ra, r.size, winSize)
	matched, err := r.readDFS20Base(ctx, yield, w)
	if err != nil {
		return err
	}
	if matched != len(r.dfs.index) {
		return r.badIndexOffset(w, matched)
	}
	return r.readDFS20Txns(ctx, yield, w)
}

// readDFS20Base walks the entries before the index, where exactly those the
// index names are current, yields those, and returns how many it yielded.
func (r *Reader) readDFS20Base(ctx context.Context, yield func([]byte) error, w *window) (int, error) {
	h := &r.dfs
	var matched int
	pos := int64(14)
	for pos < h.x {
		if h.x-pos < 4 {
			return 0, r.damage(pos, "entry length runs past the index at %d", h.x)
		}
		rl, err := w.u32(pos)
		if err != nil {
			return 0, r.ioErr(err)
		}
		if rl == 0 {
			pos += 4
			continue
		}
		if rl < 12 {
			return 0, r.damage(pos, "entry length %d is below 12", rl)
		}
		if int64(rl) > h.x-pos-4 {
			return 0, r.damage(pos, "entry of %d bytes runs past the index at %d", rl, h.x)
		}
		oid, err := w.u64(pos + 4)
		if err != nil {
			return 0, r.ioErr(err)
		}
		v, ok := h.index[oid]
		switch {
		case !ok:
			return 0, r.damageOID(pos, oid, nil, "entry for oid %d is not in the index", oid)
		case v < pos:
			return 0, r.damageOID(pos, oid, nil, "index names the entry at %d for oid %d, but a later entry follows", v, oid)
		case v == pos:
			if err := r.emitDFS20Base(ctx, yield, w, pos, rl, oid); err != nil {
				return 0, err
			}
			matched++
		}
		pos += 4 + int64(rl)
	}
	return matched, nil
}

// emitDFS20Base checks and yields the entry of oid at pos, of length rl,
// which the index names.
func (r *Reader) emitDFS20Base(ctx context.Context, yield func([]byte) error, w *window, pos int64, rl uint32, oid uint64) error {
	rec, err := w.fresh(pos+4, int64(rl))
	if err != nil {
		return r.ioErr(err)
	}
	if _, err := record.ParseFor(oid, rec); err != nil {
		return r.damageOID(pos, oid, err, "entry")
	}
	return r.emit(ctx, yield, rec, pos+4+int64(rl))
}

// badIndexOffset finds an index value that is not the start of an entry of
// its oid, after the entry walk matched fewer entries than the index names.
func (r *Reader) badIndexOffset(w *window, matched int) error {
	h := &r.dfs
	type kv struct {
		oid uint64
		off int64
	}
	var bad []kv
	for oid, off := range h.index {
		bad = append(bad, kv{oid, off})
	}
	slices.SortFunc(bad, func(a, b kv) int { return cmp.Compare(a.off, b.off) })
	for _, e := range bad {
		rl, err1 := w.u32(e.off)
		oid, err2 := w.u64(e.off + 4)
		if err1 != nil || err2 != nil || rl < 12 || oid != e.oid {
			return r.damageOID(h.x, e.oid, nil, "index offset %d for oid %d is not an entry of that oid", e.off, e.oid)
		}
	}
	return r.damage(h.x, "%d index offsets point inside entries rather than at their starts", len(h.index)-matched)
}

// readDFS20Txns checks each transaction after the index whole, then yields
// its records.
func (r *Reader) readDFS20Txns(ctx context.Context, yield func([]byte) error, w *window) error {
	pos := r.dfs.txnStart
	for pos < r.size {
		end, de := r.checkDFSTxn(w, pos)
		if de != nil {
			return de
		}
		if err := r.emitDFSTxn(ctx, yield, w, pos); err != nil {
			return err
		}
		r.offset.Store(end)
		pos = end
	}
	return nil
}

// emitDFSTxn yields the records of the checked transaction at start, up to
// its terminator.
func (r *Reader) emitDFSTxn(ctx context.Context, yield func([]byte) error, w *window, start int64) error {
	for p := start; ; {
		rl, err := w.u32(p)
		if err != nil {
			return r.ioErr(err)
		}
		if rl == 0 {
			return nil
		}
		rec, err := w.fresh(p+4, int64(rl))
		if err != nil {
			return r.ioErr(err)
		}
		p += 4 + int64(rl)
		if err := r.emit(ctx, yield, rec, p); err != nil {
			return err
		}
	}
}

// checkDFSTxn validates the transaction starting at start and returns its
// end (after the terminator).
func (r *Reader) checkDFSTxn(w *window, start int64) (int64, *DamageError) {
	incomplete := func(format string, args ...any) *DamageError {
		de := r.damage(start, format, args...)
		de.Incomplete = true
		return de
	}
	for p := start; ; {
		if r.size-p < 4 {
			return 0, incomplete("transaction cut off by the end of the file before its terminator")
		}
		rl, err := w.u32(p)
		if err != nil {
			return 0, r.damage(start, "%v", err)
		}
		if rl == 0 {
			return p + 4, nil
		}
		if int64(rl) > r.size-p-4 {
			return 0, incomplete("entry at %d of %d bytes runs past the end of the file (%d bytes)", p, rl, r.size)
		}
		if rl < 12 {
			return 0, r.damage(start, "entry at %d has length %d, below 12", p, rl)
		}
		hdr, err := w.at(p+4, 12)
		if err != nil {
			return 0, r.damage(start, "%v", err)
		}
		oid := uint64(hdr[0])<<56 | uint64(hdr[1])<<48 | uint64(hdr[2])<<40 | uint64(hdr[3])<<32 |
			uint64(hdr[4])<<24 | uint64(hdr[5])<<16 | uint64(hdr[6])<<8 | uint64(hdr[7])
		if err := checkHeader(oid, hdr, uint64(rl)); err != nil {
			return 0, r.damageOID(start, oid, err, "entry at %d", p)
		}
		p += 4 + int64(rl)
	}
}
