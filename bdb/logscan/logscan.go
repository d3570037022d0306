// Package logscan reads Berkeley DB 5.3 log files without libdb: it walks
// each file's records by their headers, checks every record's checksum,
// and says where the intact log of a file ends and whether intact records
// follow a damaged one.
//
// Why: libdb's recovery takes the first record that fails its checksum in
// the last log file for the end of the log (a write torn by a crash) and
// discards everything after it, silently, even when megabytes of intact,
// acknowledged commits follow a damaged stretch in the middle; and when
// the damage lies in an earlier file it fails with "Recovery function for
// LSN … failed", naming neither file nor offset. A scan before recovery
// tells these apart and names the file and the offset.
//
// The format (libdb 5.3, no encryption, little-endian hosts): a log file
// is a sequence of records, each a 12-byte header {prev uint32, len
// uint32, sum uint32} followed by len-12 bytes of data; prev is the offset
// of the record before it (for the file's persist header at offset 0, the
// last record of the file before; 0 in the record after it); sum is
// libdb's __ham_func4 hash of the data (h = h*33 + byte), xored with prev
// and len (__db_chksum with a header). A header of 12 zero bytes ends the
// file's records (libdb's files are zero past their end: extended
// sparsely, or written ahead with zeros). Records never span files.
package logscan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/durusbdb/durusbdb/internal/dbdir"
)

// HeaderSize is the size of a record header in an unencrypted log.
const HeaderSize = 12

// SectorSize is the unit a storage device writes atomically (or not at
// all) that a torn write leaves as zeros.
const SectorSize = 512

// persistMagic is the magic number in the data of a log file's first
// record (LOGP.magic, DB_LOGMAGIC).
const persistMagic = 0x040988

// rectypeRegop is the record type of a transaction's commit record
// (DB___txn_regop); the type is the first word of a record's data, with
// the high bit set for some debug records.
const rectypeRegop = 10

// Damage is the first stretch of a log file whose records do not read as
// libdb wrote them.
type Damage struct {
	// Offset is where the first record that fails lies.
	Offset int64
	// Reason says what failed there ("checksum mismatch", "record
	// length 5 past the end of the file", "zeros where a record
	// header belongs", …).
	Reason string
	// Resumed is the offset of the first intact record after the damage
	// in the same file, or 0 if none follows.
	Resumed int64
	// ZeroSector: the damaged stretch holds a whole zero sector (512
	// bytes, aligned), as a write torn by a power loss leaves (the pages
	// of a write that was never synced reach the disk in any order). A
	// stretch without one was written over after the fact, or rotted.
	ZeroSector bool
	// IntactRecords, IntactBytes and Commits count the intact records
	// after the damage in this file (those from Resumed on), their bytes,
	// and the commit records among them.
	IntactRecords int
	IntactBytes   int64
	Commits       int
}

// File is what a scan found in one log file.
type File struct {
	Name   string // base name, log.NNNNNNNNNN
	Number int
	Size   int64
	// Unwritten: the file's first header is zeros (created by a switch a
	// crash interrupted, or written ahead with zeros): it holds no record.
	Unwritten bool
	// NotLog: ScanDir found no log file header at its start (damage, or
	// a release whose header differs: the reader of file formats names
	// it); nothing else of it was read.
	NotLog bool
	// Records and Commits count the intact records before any damage
	// (the persist header included), End is the offset just past them.
	Records int
	Commits int
	End     int64
	// Damage is nil for a file whose records read whole up to its end.
	Damage *Damage
}

// Log is what a scan found in a directory's log files, in number order.
type Log struct {
	Files []File
	// Missing are the numbers absent between the lowest and the highest
	// log file that hold records.
	Missing []int
}

// ErrDamaged is matched (errors.Is) by every *Problem.
var ErrDamaged = errors.New("damaged or missing log file")

// ErrNotLog is returned for a file whose first record is not a log
// file's persist header.
var ErrNotLog = errors.New("not a Berkeley DB log file")

// ScanFile reads the log file at path.
func ScanFile(path string) (File, error) {
	f := File{Name: filepath.Base(path), Number: dbdir.LogNumber(filepath.Base(path))}
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("logscan: %w", err)
	}
	return Scan(f.Name, b)
}

// Scan reads the log file named name whose bytes are b.
func Scan(name string, b []byte) (File, error) {
	f := File{Name: name, Number: dbdir.LogNumber(name), Size: int64(len(b))}
	if len(b) < HeaderSize || zero(b[:HeaderSize]) {
		f.Unwritten = true
		return f, nil
	}
	// The persist header's prev is the offset of the last record of the
	// file before, which this scan does not check.
	first := int64(binary.LittleEndian.Uint32(b))
	if _, why := record(b, 0, first); why != "" || len(b) < HeaderSize+4 || binary.LittleEndian.Uint32(b[HeaderSize:]) != persistMagic {
		return f, fmt.Errorf("logscan: %s: %w (its first record is not a log file header)", name, ErrNotLog)
	}
	off, prev := int64(0), first
	for {
		n, why := record(b, off, prev)
		if why == "" && n == 0 {
			// The end of the file's records, unless bytes follow the
			// zeros: libdb takes a zero header for the end of a file
			// too, so zeros over a header in the middle hide the rest.
			if off < int64(len(b)) && !zero(b[off:]) {
				f.Damage = damaged(b, off, "")
			}
			break
		}
		if why != "" {
			f.Damage = damaged(b, off, why)
			break
		}
		f.Records++
		if isCommit(b, off) {
			f.Commits++
		}
		prev, off = off, off+n
	}
	f.End = off
	return f, nil
}

// record checks the record at off, whose prev field must be prev, and
// returns its length; 0 and no reason at the end of the file's records
// (a zero header, or no room for one), else a reason it is damaged.
func record(b []byte, off, prev int64) (int64, string) {
	if off+HeaderSize > int64(len(b)) {
		if off < int64(len(b)) && !zero(b[off:]) {
			return 0, "a record header cut off by the end of the file"
		}
		return 0, ""
	}
	h := b[off : off+HeaderSize]
	if zero(h) {
		return 0, ""
	}
	p := int64(binary.LittleEndian.Uint32(h))
	n := int64(binary.LittleEndian.Uint32(h[4:]))
	sum := binary.LittleEndian.Uint32(h[8:])
	switch {
	case n < HeaderSize:
		return 0, fmt.Sprintf("record length %d shorter than its header", n)
	case off+n > int64(len(b)):
		return 0, fmt.Sprintf("record length %d runs past the end of the file", n)
	case p != prev:
		return 0, fmt.Sprintf("record says the one before it is at %d, not %d", p, prev)
	case Sum(b[off+HeaderSize:off+n], uint32(p), uint32(n)) != sum:
		return 0, "checksum mismatch"
	}
	return n, ""
}

// Sum is the checksum libdb 5.3 stores in the header of an unencrypted
// log record: __ham_func4 of data, xored with prev and len.
func Sum(data []byte, prev, length uint32) uint32 {
	var h uint32
	for _, c := range data {
		h = h*33 + uint32(c)
	}
	return h ^ prev ^ length
}

func isCommit(b []byte, off int64) bool {
	n := int64(binary.LittleEndian.Uint32(b[off+4:]))
	if n < HeaderSize+4 {
		return false
	}
	return binary.LittleEndian.Uint32(b[off+HeaderSize:])&0x7fffffff == rectypeRegop
}

// damaged describes the damage that begins at off: it looks for the first
// intact record after it (a record whose checksum holds, whose prev points
// at or after off, and which is followed by another such record or by the
// end of the file's records) and counts the intact records from there.
func damaged(b []byte, off int64, why string) *Damage {
	d := &Damage{Offset: off, Reason: why}
	if why == "" {
		d.Reason = "zeros where a record header belongs"
	}
	end := int64(len(b))
	for c := off + 1; c+HeaderSize <= int64(len(b)); c++ {
		h := b[c : c+HeaderSize]
		p := int64(binary.LittleEndian.Uint32(h))
		n := int64(binary.LittleEndian.Uint32(h[4:]))
		if n < HeaderSize || c+n > int64(len(b)) || p < off || p >= c {
			continue
		}
		if _, bad := record(b, c, p); bad != "" {
			continue
		}
		if _, bad := record(b, c+n, c); bad != "" {
			continue
		}
		d.Resumed, end = c, c
		break
	}
	d.ZeroSector = zeroSector(b, off, end)
	if d.Resumed == 0 {
		return d
	}
	for o, p := d.Resumed, int64(binary.LittleEndian.Uint32(b[d.Resumed:])); ; {
		n, bad := record(b, o, p)
		if bad != "" || n == 0 {
			break
		}
		d.IntactRecords++
		d.IntactBytes += n
		if isCommit(b, o) {
			d.Commits++
		}
		p, o = o, o+n
	}
	return d
}

// zeroSector reports whether b[from:to] holds a whole aligned sector of
// zeros.
func zeroSector(b []byte, from, to int64) bool {
	for s := (from + SectorSize - 1) / SectorSize * SectorSize; s+SectorSize <= to; s += SectorSize {
		if zero(b[s : s+SectorSize]) {
			return true
		}
	}
	return false
}

func zero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ScanDir scans every log file in dir. A file that does not start with a
// log file header is listed as NotLog, not an error.
func ScanDir(dir string) (*Log, error) {
	nums, err := logNumbers(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{}
	prev := 0 // the last file that holds records
	for _, n := range nums {
		f, err := ScanFile(filepath.Join(dir, FileName(n)))
		if errors.Is(err, ErrNotLog) {
			f.NotLog = true
		} else if err != nil {
			return nil, err
		}
		l.Files = append(l.Files, f)
		if f.Unwritten {
			// Created by a switch a crash interrupted, or written
			// ahead with zeros (bdb's prezeroer), perhaps below the
			// log's first file: no gap to count.
			continue
		}
		for m := prev + 1; prev > 0 && m < n; m++ {
			l.Missing = append(l.Missing, m)
		}
		prev = n
	}
	return l, nil
}

// logNumbers lists the numbers of dir's log files, in order.
func logNumbers(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("logscan: %w", err)
	}
	var nums []int
	for _, e := range ents {
		if n := dbdir.LogNumber(e.Name()); n > 0 && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// FileName is the name of log file n.
func FileName(n int) string { return fmt.Sprintf("log.%010d", n) }

// Last returns the index in l.Files of the last file that holds records,
// or -1.
func (l *Log) Last() int {
	for i := len(l.Files) - 1; i >= 0; i-- {
		if !l.Files[i].Unwritten {
			return i
		}
	}
	return -1
}

// Problem is a damage or a gap found in a directory's log, with what it
// means for recovery.
type Problem struct {
	Dir  string
	File string // the log file, "" for missing files
	// Damage is the damage found in File, nil for missing files.
	Damage *Damage
	// Missing are missing log file numbers.
	Missing []int
	// InLast: the damage is in the last log file that holds records,
	// where libdb's recovery takes it for the end of the log.
	InLast bool
	// LaterRecords and LaterCommits count the intact records in the log
	// files after File.
	LaterRecords, LaterCommits int
}

// Torn reports whether the problem reads as the end of a write torn by a
// crash: damage in the last file, with no intact record after it, or with
// a zero sector in the damaged stretch (the unsynced pages of one write,
// which no acknowledged commit can follow: its fsync covers the whole
// file). Recovery truncating the log there loses nothing acknowledged.
func (p *Problem) Torn() bool {
	if p.Damage == nil || !p.InLast {
		return false
	}
	return p.Damage.Resumed == 0 || p.Damage.ZeroSector
}

// Error names the file, the offset, and what follows.
func (p *Problem) Error() string {
	if p.Damage == nil {
		names := make([]string, len(p.Missing))
		for i, n := range p.Missing {
			names[i] = FileName(n)
		}
		return fmt.Sprintf("log files missing in %s: %s (the log must run without a gap from its first file to its last)", p.Dir, strings.Join(names, ", "))
	}
	d := p.Damage
	s := fmt.Sprintf("%s: damaged log record at offset %d (%s)", filepath.Join(p.Dir, p.File), d.Offset, d.Reason)
	after := []string{}
	if d.Resumed != 0 {
		after = append(after, fmt.Sprintf("%d intact records (%d commits, %d bytes) follow it from offset %d", d.IntactRecords, d.Commits, d.IntactBytes, d.Resumed))
	}
	if p.LaterRecords > 0 {
		after = append(after, fmt.Sprintf("%d intact records (%d commits) in later log files", p.LaterRecords, p.LaterCommits))
	}
	if len(after) > 0 {
		s += ": " + strings.Join(after, "; ")
	}
	return s
}

// Unwrap lets errors.Is match ErrDamaged.
func (p *Problem) Unwrap() error { return ErrDamaged }

// Cuts reports whether libdb's recovery would end the log at this damage
// and discard intact records that need not be a torn write's: damage in
// the last file, with intact records after it and no zero sector in the
// damaged stretch.
func (p *Problem) Cuts() bool {
	return p.Damage != nil && p.InLast && p.Damage.Resumed != 0 && !p.Torn()
}

// ScanEnd scans the last log file of dir that holds records (every
// recovery reads it to find the end of the log) and returns its damage
// if recovery would cut intact records there (Problem.Cuts), else nil.
func ScanEnd(dir string) (*Problem, error) {
	nums, err := logNumbers(dir)
	if err != nil {
		return nil, err
	}
	for i := len(nums) - 1; i >= 0; i-- {
		f, err := ScanFile(filepath.Join(dir, FileName(nums[i])))
		if errors.Is(err, ErrNotLog) {
			return nil, nil // libdb's open, and the reader of file formats, say what it is
		} else if err != nil {
			return nil, err
		}
		if f.Unwritten {
			continue
		}
		if p := (&Problem{Dir: dir, File: f.Name, Damage: f.Damage, InLast: true}); p.Cuts() {
			return p, nil
		}
		return nil, nil
	}
	return nil, nil
}

// Problems lists the gaps and the damage in l, the damage of each file
// with the records that follow it.
func (l *Log) Problems(dir string) []*Problem {
	var out []*Problem
	if len(l.Missing) > 0 {
		out = append(out, &Problem{Dir: dir, Missing: l.Missing})
	}
	last := l.Last()
	for i, f := range l.Files {
		if f.Damage == nil {
			continue
		}
		p := &Problem{Dir: dir, File: f.Name, Damage: f.Damage, InLast: i == last}
		for _, g := range l.Files[i+1:] {
			p.LaterRecords += g.Records
			p.LaterCommits += g.Commits
		}
		out = append(out, p)
	}
	return out
}
