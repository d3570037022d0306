package filestorage

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/durusbdb/durusbdb/durus/record"
)

// shelfHeader holds the checked layout of a Shelf file (PROTOCOL.md §11.2).
type shelfHeader struct {
	s        int64  // S = 16 + L0, offset of the offset map
	w        int64  // W, bytes per word
	n        int64  // N, number of words
	words    int64  // offset of word 0 (S + 24)
	txnStart int64  // S + 8 + T
	blank    uint64 // the all-FF word
}

const winSize = 1 << 20

// openShelf checks steps 1–3 of PROTOCOL.md §11.2 "Reading".
func (r *Reader) openShelf() error {
	w := newWindow(r.ra, r.size, 64)
	l0, err := w.u64(8)
	if err != nil {
		return r.damage(8, "file of %d bytes ends inside the Shelf header", r.size)
	}
	if l0 > uint64(r.size) || 16+int64(l0)+24 > r.size {
		return r.damage(8, "base transaction length %d runs past the end of the file (%d bytes)", l0, r.size)
	}
	h := shelfHeader{s: 16 + int64(l0)}
	t, _ := w.u64(h.s)
	wb, _ := w.u64(h.s + 8)
	n, _ := w.u64(h.s + 16)
	if wb < 1 || wb > 8 {
		return r.damage(h.s, "offset map word size %d is not 1 to 8", wb)
	}
	if n > uint64(r.size) || t != 16+wb*n {
		return r.damage(h.s, "offset map length %d does not match %d words of %d bytes", t, n, wb)
	}
	if h.s+8+int64(t) > r.size {
		return r.damage(h.s, "offset map of %d words of %d bytes runs past the end of the file (%d bytes)", n, wb, r.size)
	}
	h.w, h.n = int64(wb), int64(n)
	h.words = h.s + 24
	h.txnStart = h.s + 8 + int64(t)
	h.blank = 1<<(8*uint(wb)) - 1
	if wb == 8 {
		h.blank = ^uint64(0)
	}
	r.shelf = h
	return nil
}

// wordAt reads word j of the offset map through w.
func (h *shelfHeader) wordAt(w *window, j int64) (uint64, error) {
	b, err := w.at(h.words+j*h.w, h.w)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// readShelf streams a Shelf file (PROTOCOL.md §11.2 steps 4–5): the offset
// map is checked, then the base records it points at and the appended
// transactions are yielded in file order.
func (r *Reader) readShelf(ctx context.Context, yield func([]byte) error) error {
	mw := newWindow(r.ra, r.size, 64<<10)
	pointers, err := r.checkShelfMap(ctx, mw)
	if err != nil {
		return err
	}
	w := newWindow(r.ra, r.size, winSize)
	matched, err := r.readShelfBase(ctx, yield, w, mw)
	if err != nil {
		return err
	}
	if matched != pointers {
		return r.badPointer(w, mw)
	}
	return r.readShelfTxns(ctx, yield, w)
}

// checkShelfMap is step 4, part 1: every word of the offset map is a base
// offset, a hole, or damage. It returns how many words are base offsets.
func (r *Reader) checkShelfMap(ctx context.Context, mw *window) (int64, error) {
	h := &r.shelf
	var pointers int64
	for j := range h.n {
		if j&0xFFFF == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		v, err := h.wordAt(mw, j)
		if err != nil {
			return 0, r.ioErr(err)
		}
		switch {
		case v < uint64(h.s):
			if v < 16 || v+28 > uint64(h.s) {
				return 0, r.damageOID(h.words+j*h.w, uint64(j), nil, "offset map word for oid %d is %d, outside the base records [16, %d)", j, v, h.s)
			}
			pointers++
		case v < uint64(h.s+h.n):
		case v == h.blank:
			return 0, r.damageOID(h.words+j*h.w, uint64(j), nil, "offset map word for oid %d is blank (the map was never finished)", j)
		default:
			return 0, r.damageOID(h.words+j*h.w, uint64(j), nil, "offset map word for oid %d has value %d, neither a base offset nor a hole (S = %d, N = %d)", j, v, h.s, h.n)
		}
	}
	return pointers, nil
}

// readShelfBase walks the base records in file order and yields those the
// offset map points at; it returns how many it yielded.
func (r *Reader) readShelfBase(ctx context.Context, yield func([]byte) error, w, mw *window) (int64, error) {
	h := &r.shelf
	var matched int64
	pos := int64(16)
	for pos < h.s {
		if h.s-pos < 16 {
			return 0, r.damage(pos, "base record header runs past the end of the base at %d", h.s)
		}
		rl, err := w.u64(pos)
		if err != nil {
			return 0, r.ioErr(err)
		}
		name, err := w.u64(pos + 8)
		if err != nil {
			return 0, r.ioErr(err)
		}
		if rl < 8 || rl > uint64(h.s-pos-8) {
			return 0, r.damageOID(pos, name, nil, "base record length %d does not fit the base ending at %d", rl, h.s)
		}
		if int64(name) >= 0 && int64(name) < h.n {
			v, err := h.wordAt(mw, int64(name))
			if err != nil {
				return 0, r.ioErr(err)
			}
			if v == uint64(pos) {
				if err := r.emitShelfBase(ctx, yield, w, pos, rl, name); err != nil {
					return 0, err
				}
				matched++
			}
		}
		pos += 8 + int64(rl)
	}
	return matched, nil
}

// emitShelfBase checks and yields the base record of oid name at pos, of
// length rl, which the offset map points at.
func (r *Reader) emitShelfBase(ctx context.Context, yield func([]byte) error, w *window, pos int64, rl, name uint64) error {
	if rl < 20 {
		return r.damageOID(pos, name, nil, "base record length %d is below 20", rl)
	}
	if rl-8 > MaxRecordSize {
		return r.damageOID(pos, name, ErrTooLarge, "record of %d bytes cannot be served (limit 2³²−1)", rl-8)
	}
	rec, err := w.fresh(pos+16, int64(rl)-8)
	if err != nil {
		return r.ioErr(err)
	}
	if _, err := record.ParseFor(name, rec); err != nil {
		return r.damageOID(pos, name, err, "base record")
	}
	return r.emit(ctx, yield, rec, pos+8+int64(rl))
}

// readShelfTxns is step 5: each appended transaction is checked whole, then
// its records are yielded.
func (r *Reader) readShelfTxns(ctx context.Context, yield func([]byte) error, w *window) error {
	pos := r.shelf.txnStart
	prevEmpty := false
	for pos < r.size {
		start := pos
		if r.size-pos < 8 {
			return &DamageError{Path: r.path, Offset: start, Incomplete: true, Interrupted: prevEmpty,
				Reason: "transaction length cut off by the end of the file"}
		}
		tl, err := w.u64(pos)
		if err != nil {
			return r.ioErr(err)
		}
		if tl > uint64(r.size-pos-8) {
			return &DamageError{Path: r.path, Offset: start, Incomplete: true, Interrupted: prevEmpty,
				Reason: "transaction of " + itoa(tl) + " bytes runs past the end of the file (" + itoa(uint64(r.size)) + " bytes)"}
		}
		end := pos + 8 + int64(tl)
		if tl == 0 {
			prevEmpty = true
			pos = end
			continue
		}
		// Pass 1: check the whole transaction before yielding any of it.
		if de := r.checkShelfTxn(w, start, end); de != nil {
			if prevEmpty {
				de.Interrupted, de.Incomplete = true, true
			}
			return de
		}
		// Pass 2: yield.
		if err := r.emitShelfTxn(ctx, yield, w, start, end); err != nil {
			return err
		}
		r.offset.Store(end)
		prevEmpty = false
		pos = end
	}
	return nil
}

// emitShelfTxn yields the records of the checked transaction [start, end).
func (r *Reader) emitShelfTxn(ctx context.Context, yield func([]byte) error, w *window, start, end int64) error {
	for p := start + 8; p < end; {
		rl, err := w.u64(p)
		if err != nil {
			return r.ioErr(err)
		}
		rec, err := w.fresh(p+16, int64(rl)-8)
		if err != nil {
			return r.ioErr(err)
		}
		p += 8 + int64(rl)
		if err := r.emit(ctx, yield, rec, p); err != nil {
			return err
		}
	}
	return nil
}

// checkShelfTxn validates the shelf records of the transaction [start, end)
// whose TL is already known to fit the file.
func (r *Reader) checkShelfTxn(w *window, start, end int64) *DamageError {
	for p := start + 8; p < end; {
		if end-p < 16 {
			return r.damage(start, "transaction's record at %d: header runs past the transaction end %d", p, end)
		}
		rl, err := w.u64(p)
		if err != nil {
			return r.damage(start, "%v", err)
		}
		name, _ := w.u64(p + 8)
		if rl < 20 || rl > uint64(end-p-8) {
			return r.damageOID(start, name, nil, "record at %d: length %d does not fit the transaction ending at %d", p, rl, end)
		}
		if rl-8 > MaxRecordSize {
			return r.damageOID(start, name, ErrTooLarge, "record at %d of %d bytes cannot be served (limit 2³²−1)", p, rl-8)
		}
		hdr, err := w.at(p+16, 12)
		if err != nil {
			return r.damage(start, "%v", err)
		}
		if err := checkHeader(name, hdr, rl-8); err != nil {
			return r.damageOID(start, name, err, "record at %d", p)
		}
		p += 8 + int64(rl)
	}
	return nil
}

// checkHeader checks R1–R4 from a record's first 12 bytes and its length.
func checkHeader(oid uint64, hdr []byte, length uint64) error {
	own := binary.BigEndian.Uint64(hdr)
	if own != oid {
		return &record.Error{OID: oid, Reason: "record names oid " + itoa(own) + ", stored under oid " + itoa(oid)}
	}
	n := uint64(binary.BigEndian.Uint32(hdr[8:]))
	if 12+n > length {
		return &record.Error{OID: oid, Reason: "data length " + itoa(n) + " runs past the record's " + itoa(length) + " bytes"}
	}
	if (length-12-n)%8 != 0 {
		return &record.Error{OID: oid, Reason: "refs length " + itoa(length-12-n) + " is not a multiple of 8"}
	}
	return nil
}

// badPointer finds a map word that does not point at a base record of its
// oid, after the base walk matched fewer records than the map points at.
func (r *Reader) badPointer(w, mw *window) error {
	h := &r.shelf
	for j := range h.n {
		v, err := h.wordAt(mw, j)
		if err != nil {
			return r.ioErr(err)
		}
		if v >= uint64(h.s) {
			continue
		}
		rl, err1 := w.u64(int64(v))
		name, err2 := w.u64(int64(v) + 8)
		if err := errors.Join(err1, err2); err != nil {
			return r.ioErr(err)
		}
		if name != uint64(j) || rl < 20 || rl > uint64(h.s-int64(v)-8) {
			return r.damageOID(h.words+j*h.w, uint64(j), nil, "offset map word for oid %d points at %d, which is not a base record of that oid", j, v)
		}
	}
	return r.damage(h.words, "offset map words point inside base records rather than at their starts")
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
