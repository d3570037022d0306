package leveldb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/durusbdb/durusbdb/internal/staging"
)

// Physical record types of the log format (log_format.h).
const (
	logFull   = 1
	logFirst  = 2
	logMiddle = 3
	logLast   = 4
)

// LogDamage is a part of a log file whose records fail their checksums
// (or whose lengths run past their block): the logical records (write
// batches, i.e. commits) it held are lost.
type LogDamage struct {
	File   string // the log file's name
	Offset int64  // where the first damaged record begins
}

// DropDamagedLogRecords rewrites the log file at path without the logical
// records that any damaged physical record belongs to (the records after
// it in its block too, unless the next one, read where the damaged one's
// length says, checks: damage in a record's data leaves its length
// whole), so that a repair does not replay them: leveldb::RepairDB reads logs
// without their checksums, and a QA round's repair brought back a record
// with the damaged bytes in it, which every client then failed to
// unpickle, while check said ok. The original is kept in lostDir (as
// NAME.damaged). A log without damage is left as it is (nil); a record cut
// short at the end of the file (a crash during a write) is not damage.
func DropDamagedLogRecords(path, lostDir string) ([]LogDamage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("leveldb: read log %s: %w", path, err)
	}
	name := filepath.Base(path)
	recs, damaged := intactLogRecords(b, name)
	if len(damaged) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(lostDir, 0o750); err != nil {
		return damaged, fmt.Errorf("leveldb: keep damaged log %s: %w", path, err)
	}
	keep := filepath.Join(lostDir, name+".damaged")
	for i := 1; ; i++ {
		if _, err := os.Lstat(keep); errors.Is(err, fs.ErrNotExist) {
			break
		}
		keep = filepath.Join(lostDir, fmt.Sprintf("%s.damaged.%d", name, i))
	}
	tmp := path + ".clean"
	if err := writeLog(tmp, recs); err != nil {
		os.Remove(tmp)
		return damaged, fmt.Errorf("leveldb: rewrite log %s: %w", path, err)
	}
	if err := os.Link(path, keep); err != nil {
		os.Remove(tmp)
		return damaged, fmt.Errorf("leveldb: keep damaged log %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return damaged, fmt.Errorf("leveldb: rewrite log %s: %w", path, err)
	}
	return damaged, syncDirs(filepath.Dir(path), lostDir)
}

// intactLogRecords returns the logical records of the log b whose every
// physical record checks, in order, and where the damaged ones began.
func intactLogRecords(b []byte, name string) ([][]byte, []LogDamage) {
	var (
		recs    [][]byte
		damaged []LogDamage
		cur     []byte
		in      bool // a FIRST was read and its LAST not yet
		start   int  // offset of cur's FIRST
	)
	damage := func(at int) {
		if in {
			at = start
		}
		damaged = append(damaged, LogDamage{File: name, Offset: int64(at)})
		cur, in = nil, false
	}
	for blk := 0; blk < len(b); blk += logBlock {
		end := min(blk+logBlock, len(b))
		// suspect: the last record failed its checksum and the next one is
		// read where its length says; if that one does not check either,
		// the length was damaged too and the rest of the block is dropped.
		suspect := false
		for p := blk; end-p >= logHeader; {
			h := b[p : p+logHeader]
			length := int(binary.LittleEndian.Uint16(h[4:6]))
			typ := h[6]
			if typ == 0 && length == 0 {
				break // zero padding
			}
			if p+logHeader+length > end {
				if end == len(b) && !suspect {
					return recs, damaged // cut short by a crash: the end
				}
				if !suspect {
					damage(p)
				}
				break // the rest of the block cannot be trusted
			}
			data := b[p+logHeader : p+logHeader+length]
			if crc32.Checksum(b[p+6:p+logHeader+length], castagnoli) != unmask(binary.LittleEndian.Uint32(h[:4])) {
				if suspect {
					break
				}
				damage(p)
				suspect = true
				p += logHeader + length
				continue
			}
			suspect = false
			switch typ {
			case logFull:
				if in {
					damage(p)
				}
				recs = append(recs, append([]byte(nil), data...))
			case logFirst:
				if in {
					damage(p)
				}
				cur, in, start = append([]byte(nil), data...), true, p
			case logMiddle:
				if in { // else: the rest of a record already counted damaged
					cur = append(cur, data...)
				}
			case logLast:
				if in {
					recs = append(recs, append(cur, data...))
					cur, in = nil, false
				}
			default:
				damage(p)
				p = end
				continue
			}
			p += logHeader + length
		}
	}
	return recs, damaged
}

// writeLog writes recs to a new log file at path (encodeLog), synced.
func writeLog(path string, recs [][]byte) error {
	return staging.WriteFileSync(path, encodeLog(recs))
}

// encodeLog returns recs in the log format: physical records fragmented
// across 32 KiB blocks, a block's tail too short for a header zeroed.
func encodeLog(recs [][]byte) []byte {
	var out []byte
	off := 0 // offset in the current block
	for _, r := range recs {
		begin := true
		for {
			if left := logBlock - off; left < logHeader {
				out = append(out, make([]byte, left)...)
				off = 0
			}
			frag := min(len(r), logBlock-off-logHeader)
			last := frag == len(r)
			typ := byte(logMiddle)
			switch {
			case begin && last:
				typ = logFull
			case begin:
				typ = logFirst
			case last:
				typ = logLast
			}
			crc := crc32.Update(crc32.Checksum([]byte{typ}, castagnoli), castagnoli, r[:frag])
			out = binary.LittleEndian.AppendUint32(out, mask(crc))
			out = binary.LittleEndian.AppendUint16(out, uint16(frag))
			out = append(out, typ)
			out = append(out, r[:frag]...)
			off += logHeader + frag
			r, begin = r[frag:], false
			if last {
				break
			}
		}
	}
	return out
}

// mask is the inverse of unmask (LevelDB's crc32c::Mask).
func mask(crc uint32) uint32 { return (crc>>15 | crc<<17) + 0xa282ead8 }

// syncDirs fsyncs each directory.
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("leveldb: sync %s: %w", d, err)
		}
	}
	return nil
}
