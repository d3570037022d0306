package logscan

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// LSN is a log sequence number: a log file's number and an offset in it.
type LSN struct{ File, Offset uint32 }

// String prints l as libdb does: [file][offset].
func (l LSN) String() string { return fmt.Sprintf("[%d][%d]", l.File, l.Offset) }

// Less orders LSNs.
func (l LSN) Less(m LSN) bool {
	return l.File < m.File || l.File == m.File && l.Offset < m.Offset
}

// PageLSN is the highest LSN on the pages of a database file, and the
// page that carries it.
type PageLSN struct {
	File string
	Page uint32
	LSN  LSN
}

// metaPageSizeAt is the offset of the page size in a database file's
// meta page (DBMETA: lsn 8, pgno 4, magic 4, version 4, pagesize 4).
const metaPageSizeAt = 20

// MaxPageLSN reads every page of the database file at path and returns the
// highest LSN they carry. Write-ahead logging keeps every page's LSN at
// or below the end of the log, so a higher one means log files are
// missing (removed by hand, or a copy without them): the recovery that
// reads the log then ends it early, without a word. Pages whose LSN was
// reset (lsn_reset, file number 0) are passed over.
func MaxPageLSN(path string) (PageLSN, error) {
	out := PageLSN{File: filepath.Base(path)}
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("logscan: %w", err)
	}
	defer f.Close()
	meta := make([]byte, 512)
	if _, err := io.ReadFull(f, meta); err != nil {
		return out, fmt.Errorf("logscan: %s: read its meta page: %w", path, err)
	}
	size := binary.LittleEndian.Uint32(meta[metaPageSizeAt:])
	if size < 512 || size > 64<<10 || size&(size-1) != 0 {
		return out, fmt.Errorf("logscan: %s: page size %d in its meta page is none of libdb's", path, size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return out, fmt.Errorf("logscan: %w", err)
	}
	buf := make([]byte, 256*int(size))
	for pg := uint32(0); ; {
		n, err := io.ReadFull(f, buf)
		for o := 0; o+int(size) <= n; o += int(size) {
			l := LSN{binary.LittleEndian.Uint32(buf[o:]), binary.LittleEndian.Uint32(buf[o+4:])}
			if l.File != 0 && out.LSN.Less(l) {
				out.LSN, out.Page = l, pg
			}
			pg++
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("logscan: %s: %w", path, err)
		}
	}
}

// End returns the end of the intact log in l: the last file that holds
// records, at the end of its intact records (before any damage).
func (l *Log) End() (LSN, bool) {
	i := l.Last()
	if i < 0 {
		return LSN{}, false
	}
	f := l.Files[i]
	return LSN{uint32(f.Number), uint32(f.End)}, true
}
