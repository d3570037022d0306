package leveldb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/durusbdb/durusbdb/kv"
)

// verifyBudget bounds the bytes Verify reads when it runs to explain a
// corruption error met by a read (1 GiB); the newest files are checked first.
const verifyBudget = 1 << 30

// Verify checks the files of the LevelDB database in dir without opening
// it (so it also works while another process holds the LOCK): the files
// its current version uses (the MANIFEST named by CURRENT, the tables it
// lists, the logs from its log number on; obsolete files LevelDB deletes at
// its next open are skipped): for every table file (*.ldb, *.sst) the
// footer magic, the index and metaindex
// blocks, and the CRC-32C (and snappy decoding) of every block they point
// to; for every log and MANIFEST file the CRC of every record (a record
// cut short at the end of the file, as a crash leaves it, is not damage).
//
// budget bounds the bytes read (newest files first; < 0: no bound). It
// returns nil when nothing is damaged, else an error wrapping kv.ErrCorrupt
// that names each damaged file and the offset of the damage.
func Verify(dir string, budget int64) error {
	damaged, unchecked, err := verify(dir, budget)
	if err != nil {
		return fmt.Errorf("leveldb: verify %s: %w", dir, err)
	}
	if len(damaged) == 0 {
		return nil
	}
	return fmt.Errorf("leveldb: verify %s: %s: %w", dir, describeDamage(damaged, unchecked), kv.ErrCorrupt)
}

// describeDamage joins verify's findings into one message.
func describeDamage(damaged []string, unchecked int) string {
	msg := "damaged: " + strings.Join(damaged, "; ")
	if unchecked > 0 {
		msg += fmt.Sprintf(" (%d older files not checked)", unchecked)
	}
	return msg
}

// verify returns one description per damaged file, and how many files the
// budget left unchecked.
func verify(dir string, budget int64) (damaged []string, unchecked int, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	type file struct {
		name string
		num  int64
	}
	var files []file
	for _, e := range ents {
		name := e.Name()
		base, num := name, int64(-1)
		if i := strings.LastIndexByte(name, '.'); i > 0 {
			base = name[:i]
		}
		base = strings.TrimPrefix(base, "MANIFEST-")
		if n, err := strconv.ParseInt(base, 10, 64); err == nil {
			num = n
		}
		switch {
		case strings.HasSuffix(name, ".ldb"), strings.HasSuffix(name, ".sst"),
			strings.HasSuffix(name, ".log") && num >= 0, strings.HasPrefix(name, "MANIFEST-"):
			files = append(files, file{name, num})
		}
	}
	// Only what the current version uses: an interrupted compaction leaves
	// a partial table that no MANIFEST lists, which LevelDB deletes at its
	// next open. If the MANIFEST cannot be read, every file is checked
	// (and the MANIFEST's own check says what is wrong with it).
	if lf, err := readLiveFiles(dir); err == nil {
		kept := files[:0]
		for _, f := range files {
			switch {
			case strings.HasSuffix(f.name, ".ldb") || strings.HasSuffix(f.name, ".sst"):
				if !lf.tables[uint64(f.num)] {
					continue
				}
			case strings.HasSuffix(f.name, ".log"):
				if uint64(f.num) < lf.logFrom {
					continue
				}
			case f.name != lf.manifest:
				continue
			}
			kept = append(kept, f)
		}
		files = kept
	}
	damaged = append(damaged, missingFiles(dir)...)
	sort.Slice(files, func(i, j int) bool { return files[i].num > files[j].num })
	var read int64
	for _, f := range files {
		if budget >= 0 && read >= budget {
			unchecked++
			continue
		}
		path := filepath.Join(dir, f.name)
		var n int64
		var err error
		if strings.HasSuffix(f.name, ".ldb") || strings.HasSuffix(f.name, ".sst") {
			n, err = verifyTable(path)
		} else {
			n, err = verifyLog(path)
		}
		read += n
		if err != nil {
			damaged = append(damaged, err.Error())
		}
	}
	return damaged, unchecked, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// unmask inverts LevelDB's crc32c::Mask.
func unmask(m uint32) uint32 {
	r := m - 0xa282ead8
	return r>>17 | r<<15
}

const (
	tableMagic  = 0xdb4775248b80fb57
	footerLen   = 48
	trailerLen  = 5
	maxBlockLen = 1 << 30
)

type blockHandle struct{ off, size uint64 }

func readHandle(b []byte) (blockHandle, []byte, error) {
	off, n := binary.Uvarint(b)
	if n <= 0 {
		return blockHandle{}, nil, errors.New("bad block handle")
	}
	size, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return blockHandle{}, nil, errors.New("bad block handle")
	}
	return blockHandle{off, size}, b[n+m:], nil
}

// verifyTable checks one table file and returns the bytes read.
func verifyTable(path string) (int64, error) {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("table %s: %v", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("table %s: %v", name, err)
	}
	size := fi.Size()
	if size < footerLen {
		return 0, fmt.Errorf("table %s: %d bytes, too short for a table (truncated?)", name, size)
	}
	var footer [footerLen]byte
	if _, err := f.ReadAt(footer[:], size-footerLen); err != nil {
		return footerLen, fmt.Errorf("table %s: read footer: %v", name, err)
	}
	if binary.LittleEndian.Uint64(footer[40:]) != tableMagic {
		return footerLen, fmt.Errorf("table %s: bad magic number at offset %d (truncated or overwritten)", name, size-footerLen)
	}
	meta, rest, err := readHandle(footer[:40])
	if err != nil {
		return footerLen, fmt.Errorf("table %s: footer: %v", name, err)
	}
	index, _, err := readHandle(rest)
	if err != nil {
		return footerLen, fmt.Errorf("table %s: footer: %v", name, err)
	}
	t := &tableReader{f: f, name: name, size: size, read: footerLen}
	for _, top := range []struct {
		h    blockHandle
		what string
	}{{index, "index"}, {meta, "metaindex"}} {
		blk, err := t.block(top.h, top.what)
		if err != nil {
			return t.read, err
		}
		err = blockEntries(blk, func(_, v []byte) error {
			h, _, err := readHandle(v)
			if err != nil {
				return err
			}
			_, err = t.block(h, "data")
			return err
		})
		if err != nil {
			if strings.HasPrefix(err.Error(), "table ") {
				return t.read, err
			}
			return t.read, fmt.Errorf("table %s: %s block at offset %d: %v", name, top.what, top.h.off, err)
		}
	}
	return t.read, nil
}

// tableReader reads the checksummed blocks of one table file, counting
// the bytes read.
type tableReader struct {
	f    *os.File
	name string // the file's base name, for errors
	size int64  // the file's size
	read int64  // bytes read so far
}

// block reads, checks and decompresses the block at h (a what block,
// for errors).
func (t *tableReader) block(h blockHandle, what string) ([]byte, error) {
	name, size := t.name, t.size
	limit := uint64(size - footerLen)
	if h.size > maxBlockLen || h.off+h.size+trailerLen > limit || h.off+h.size+trailerLen < h.off {
		return nil, fmt.Errorf("table %s: %s block handle (offset %d, size %d) beyond the file (%d bytes)", name, what, h.off, h.size, size)
	}
	buf := make([]byte, h.size+trailerLen)
	if _, err := t.f.ReadAt(buf, int64(h.off)); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("table %s: %s block at offset %d: %v", name, what, h.off, err)
	}
	t.read += int64(len(buf))
	data, typ := buf[:h.size], buf[h.size]
	want := unmask(binary.LittleEndian.Uint32(buf[h.size+1:]))
	if crc32.Checksum(buf[:h.size+1], castagnoli) != want {
		return nil, fmt.Errorf("table %s: %s block at offset %d: checksum mismatch", name, what, h.off)
	}
	switch typ {
	case 0:
		return data, nil
	case 1:
		out, err := snappyDecode(data)
		if err != nil {
			return nil, fmt.Errorf("table %s: %s block at offset %d: snappy: %v", name, what, h.off, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("table %s: %s block at offset %d: unknown compression type %d", name, what, h.off, typ)
}

// blockEntries calls fn with each key and value of a decoded block.
func blockEntries(b []byte, fn func(k, v []byte) error) error {
	if len(b) < 4 {
		return errors.New("block too short")
	}
	nr := binary.LittleEndian.Uint32(b[len(b)-4:])
	if uint64(nr)*4+4 > uint64(len(b)) {
		return errors.New("bad restart count")
	}
	data := b[:len(b)-4-int(nr)*4]
	var key []byte
	for len(data) > 0 {
		shared, n1 := binary.Uvarint(data)
		if n1 <= 0 {
			return errors.New("bad entry")
		}
		unshared, n2 := binary.Uvarint(data[n1:])
		if n2 <= 0 {
			return errors.New("bad entry")
		}
		vlen, n3 := binary.Uvarint(data[n1+n2:])
		if n3 <= 0 {
			return errors.New("bad entry")
		}
		data = data[n1+n2+n3:]
		if shared > uint64(len(key)) || unshared+vlen > uint64(len(data)) {
			return errors.New("bad entry lengths")
		}
		key = append(key[:shared], data[:unshared]...)
		v := data[unshared : unshared+vlen]
		data = data[unshared+vlen:]
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return nil
}

// Log file format (log_format.h): 32 KiB blocks of records with a 7-byte
// header: masked crc32c (of type and data), uint16 length, type.
const (
	logBlock  = 32 << 10
	logHeader = 7
)

// verifyLog checks the record checksums of a log or MANIFEST file.
func verifyLog(path string) (int64, error) {
	name := filepath.Base(path)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("log %s: %v", name, err)
	}
	for blk := 0; blk < len(b); blk += logBlock {
		end := min(blk+logBlock, len(b))
		p := blk
		for end-p >= logHeader {
			h := b[p : p+logHeader]
			length := int(binary.LittleEndian.Uint16(h[4:6]))
			typ := h[6]
			if typ == 0 && length == 0 {
				break // zero padding (preallocated or block trailer)
			}
			if p+logHeader+length > end {
				if end == len(b) {
					return int64(len(b)), nil // cut short by a crash: not damage
				}
				return int64(len(b)), fmt.Errorf("log %s: record at offset %d: length %d crosses a block", name, p, length)
			}
			want := unmask(binary.LittleEndian.Uint32(h[:4]))
			if crc32.Checksum(b[p+6:p+logHeader+length], castagnoli) != want {
				return int64(len(b)), fmt.Errorf("log %s: record at offset %d: checksum mismatch", name, p)
			}
			p += logHeader + length
		}
	}
	return int64(len(b)), nil
}

// snappyDecode decodes a snappy block (the format LevelDB compresses table
// blocks with). Kept here, ~50 lines, so the verifier needs no other module.
func snappyDecode(src []byte) ([]byte, error) {
	dlen, n := binary.Uvarint(src)
	if n <= 0 || dlen > maxBlockLen {
		return nil, errors.New("bad length header")
	}
	src = src[n:]
	dst := make([]byte, 0, dlen)
	for len(src) > 0 {
		tag := src[0]
		var length, offset int
		switch tag & 3 {
		case 0:
			length = int(tag >> 2)
			src = src[1:]
			if length >= 60 {
				nb := length - 59
				if len(src) < nb {
					return nil, errors.New("truncated literal length")
				}
				length = 0
				for i := nb - 1; i >= 0; i-- {
					length = length<<8 | int(src[i])
				}
				src = src[nb:]
			}
			length++
			if length <= 0 || length > len(src) || len(dst)+length > int(dlen) {
				return nil, errors.New("bad literal")
			}
			dst = append(dst, src[:length]...)
			src = src[length:]
			continue
		case 1:
			if len(src) < 2 {
				return nil, errors.New("truncated copy")
			}
			length = 4 + int(tag>>2)&7
			offset = int(tag&0xe0)<<3 | int(src[1])
			src = src[2:]
		case 2:
			if len(src) < 3 {
				return nil, errors.New("truncated copy")
			}
			length = 1 + int(tag>>2)
			offset = int(binary.LittleEndian.Uint16(src[1:]))
			src = src[3:]
		case 3:
			if len(src) < 5 {
				return nil, errors.New("truncated copy")
			}
			length = 1 + int(tag>>2)
			offset = int(binary.LittleEndian.Uint32(src[1:]))
			src = src[5:]
		}
		if offset <= 0 || offset > len(dst) || len(dst)+length > int(dlen) {
			return nil, errors.New("bad copy")
		}
		for i := 0; i < length; i++ {
			dst = append(dst, dst[len(dst)-offset])
		}
	}
	if len(dst) != int(dlen) {
		return nil, errors.New("decoded length differs from header")
	}
	return dst, nil
}
