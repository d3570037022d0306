package leveldb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// liveFiles are the files of a LevelDB directory that its current version
// uses: the MANIFEST that CURRENT names, the table files that MANIFEST
// lists as live, and the log files numbered from its log number on. Other
// table and log files are obsolete (an interrupted compaction's output,
// files awaiting deletion): LevelDB deletes them at its next open.
type liveFiles struct {
	manifest string
	tables   map[uint64]bool
	logFrom  uint64
}

// VersionEdit tags (LevelDB db/version_edit.cc).
const (
	tagComparator     = 1
	tagLogNumber      = 2
	tagNextFileNumber = 3
	tagLastSequence   = 4
	tagCompactPointer = 5
	tagDeletedFile    = 6
	tagNewFile        = 7
	tagPrevLogNumber  = 9
)

// readLiveFiles reads CURRENT and the MANIFEST it names in dir.
func readLiveFiles(dir string) (*liveFiles, error) {
	cur, err := os.ReadFile(filepath.Join(dir, "CURRENT"))
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(string(cur))
	if !strings.HasPrefix(name, "MANIFEST-") || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("CURRENT names %q, not a MANIFEST", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	lf := &liveFiles{manifest: name, tables: map[uint64]bool{}}
	live := map[fileKey]bool{}
	err = logRecords(b, func(rec []byte) error { return applyEdit(rec, lf, live) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for k := range live {
		lf.tables[k.num] = true
	}
	return lf, nil
}

// fileKey names a table file in a MANIFEST: its level and number.
type fileKey struct {
	level uint64
	num   uint64
}

// applyEdit applies one MANIFEST record (a version edit) to the live
// table files and to lf's first live log number.
func applyEdit(rec []byte, lf *liveFiles, live map[fileKey]bool) error {
	var err error
	for len(rec) > 0 {
		tag, n := binary.Uvarint(rec)
		if n <= 0 {
			return errors.New("bad tag")
		}
		rec = rec[n:]
		var v [2]uint64
		switch tag {
		case tagComparator:
			if rec, err = skipPrefixed(rec); err != nil {
				return err
			}
		case tagLogNumber, tagNextFileNumber, tagLastSequence, tagPrevLogNumber:
			if v[0], rec, err = uvarint(rec); err != nil {
				return err
			}
			if tag == tagLogNumber {
				lf.logFrom = v[0]
			}
		case tagCompactPointer:
			if _, rec, err = uvarint(rec); err != nil {
				return err
			}
			if rec, err = skipPrefixed(rec); err != nil {
				return err
			}
		case tagDeletedFile:
			for i := range v {
				if v[i], rec, err = uvarint(rec); err != nil {
					return err
				}
			}
			delete(live, fileKey{v[0], v[1]})
		case tagNewFile:
			for i := range v {
				if v[i], rec, err = uvarint(rec); err != nil {
					return err
				}
			}
			if _, rec, err = uvarint(rec); err != nil { // file size
				return err
			}
			for range 2 { // smallest, largest keys
				if rec, err = skipPrefixed(rec); err != nil {
					return err
				}
			}
			live[fileKey{v[0], v[1]}] = true
		default:
			return fmt.Errorf("unknown version edit tag %d", tag)
		}
	}
	return nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, errors.New("bad varint")
	}
	return v, b[n:], nil
}

func skipPrefixed(b []byte) ([]byte, error) {
	l, b, err := uvarint(b)
	if err != nil {
		return b, err
	}
	if uint64(len(b)) < l {
		return b, errors.New("length-prefixed field past the end")
	}
	return b[l:], nil
}

// logRecords calls fn with every whole record of a LevelDB log-format file
// (a MANIFEST), reassembling fragments; a record cut short at the end of
// the file (a crash) ends the reading without error.
func logRecords(b []byte, fn func(rec []byte) error) error {
	var frag []byte
	for blk := 0; blk < len(b); blk += logBlock {
		end := min(blk+logBlock, len(b))
		p := blk
		for end-p >= logHeader {
			h := b[p : p+logHeader]
			length := int(binary.LittleEndian.Uint16(h[4:6]))
			typ := h[6]
			if typ == 0 && length == 0 {
				break
			}
			if p+logHeader+length > end {
				return nil
			}
			data := b[p+logHeader : p+logHeader+length]
			p += logHeader + length
			switch typ {
			case 1: // full
				if err := fn(data); err != nil {
					return err
				}
			case 2: // first
				frag = append(frag[:0], data...)
			case 3: // middle
				frag = append(frag, data...)
			case 4: // last
				frag = append(frag, data...)
				if err := fn(frag); err != nil {
					return err
				}
				frag = frag[:0]
			default:
				return fmt.Errorf("record type %d", typ)
			}
		}
	}
	return nil
}

// missingFiles describes the files the current MANIFEST names that are
// not in dir: its live log file and its table files; nil when none is
// missing, the MANIFEST cannot be read (LevelDB's open and Verify report
// that) or names no log (a repair's). LevelDB's open replays the logs it
// finds from the log number on and says nothing of one that is missing,
// so the commits it held since the last compaction were gone without a
// word (a QA round removed it: the next open found no layout, check said
// the database was never initialised); and it opens without a table file,
// failing only the reads that reach it.
func missingFiles(dir string) []string {
	lf, err := readLiveFiles(dir)
	if err != nil {
		return nil
	}
	var out []string
	if lf.logFrom != 0 {
		name := fmt.Sprintf("%06d.log", lf.logFrom)
		if _, err := os.Stat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
			out = append(out, fmt.Sprintf("%s: missing: %s names it as the live log, which holds every commit since the last compaction (all of them if none ran yet)", filepath.Join(dir, name), lf.manifest))
		}
	}
	var nums []uint64
	for n := range lf.tables {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	for _, n := range nums {
		ldb := filepath.Join(dir, fmt.Sprintf("%06d.ldb", n))
		if _, err := os.Stat(ldb); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%06d.sst", n))); errors.Is(err, os.ErrNotExist) {
			out = append(out, fmt.Sprintf("%s: missing: %s lists it as a live table", ldb, lf.manifest))
		}
	}
	return out
}
