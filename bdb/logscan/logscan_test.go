package logscan

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// build makes a log file of size bytes: the persist header, then records
// with the given data lengths (every third a commit record), then zeros.
// It returns the file and the offsets of its records.
func build(size int, lens ...int) ([]byte, []int) {
	b := make([]byte, 0, size)
	var offs []int
	prev := uint32(0)
	add := func(data []byte) {
		off := len(b)
		offs = append(offs, off)
		n := uint32(HeaderSize + len(data))
		h := make([]byte, HeaderSize)
		binary.LittleEndian.PutUint32(h, prev)
		binary.LittleEndian.PutUint32(h[4:], n)
		binary.LittleEndian.PutUint32(h[8:], Sum(data, prev, n))
		b = append(append(b, h...), data...)
		prev = uint32(off)
	}
	persist := make([]byte, 16)
	binary.LittleEndian.PutUint32(persist, persistMagic)
	binary.LittleEndian.PutUint32(persist[4:], 19)
	add(persist)
	for i, n := range lens {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(i*7 + j*13 + 1)
		}
		if n >= 4 {
			binary.LittleEndian.PutUint32(data, 2) // not a commit
			if i%3 == 0 {
				binary.LittleEndian.PutUint32(data, rectypeRegop)
			}
		}
		add(data)
	}
	if len(b) < size {
		b = append(b, make([]byte, size-len(b))...)
	}
	return b, offs
}

func lens(n, each int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = each + i%50
	}
	return out
}

func TestScanIntact(t *testing.T) {
	b, offs := build(1<<20, lens(300, 200)...)
	f, err := Scan("log.0000000001", b)
	if err != nil || f.Damage != nil || f.Unwritten {
		t.Fatalf("intact log: %+v %v", f, err)
	}
	if f.Records != 301 || f.Commits != 100 || f.Number != 1 {
		t.Errorf("records %d commits %d number %d, want 301 100 1", f.Records, f.Commits, f.Number)
	}
	last := offs[len(offs)-1]
	if want := int64(last) + int64(binary.LittleEndian.Uint32(b[last+4:])); f.End != want {
		t.Errorf("end %d, want %d", f.End, want)
	}
}

// TestScanDamageInTheMiddle: garbage over a record in the middle of the
// file is damage that intact records follow, with no zero sector: the kind
// libdb's recovery would cut (Cuts).
func TestScanDamageInTheMiddle(t *testing.T) {
	b, offs := build(1<<20, lens(300, 200)...)
	at := offs[100] + 5
	for i := 0; i < 64; i++ {
		b[at+i] ^= 0x5a
	}
	f, err := Scan("log.0000000003", b)
	if err != nil || f.Damage == nil {
		t.Fatalf("damaged log: %+v %v", f, err)
	}
	d := f.Damage
	if d.Offset != int64(offs[100]) || d.Resumed == 0 || d.ZeroSector {
		t.Fatalf("damage %+v, want it at %d, resumed, no zero sector", d, offs[100])
	}
	if d.Resumed > int64(offs[102]) || d.IntactRecords < 198 {
		t.Errorf("resumed at %d with %d intact records, want by %d with ≥ 198", d.Resumed, d.IntactRecords, offs[102])
	}
	p := &Problem{Dir: "d", File: f.Name, Damage: d, InLast: true}
	if !p.Cuts() || p.Torn() || !errors.Is(p, ErrDamaged) {
		t.Errorf("cuts %v torn %v", p.Cuts(), p.Torn())
	}
	// Zeros over one record's header: libdb takes them for the end of
	// the file; the records after them are still found.
	b, offs = build(1<<20, lens(300, 200)...)
	clear(b[offs[100] : offs[100]+HeaderSize])
	f, _ = Scan("log.0000000003", b)
	if d := f.Damage; d == nil || d.Offset != int64(offs[100]) || d.Resumed != int64(offs[101]) || d.ZeroSector {
		t.Fatalf("a zeroed header: %+v, want damage at %d resumed at %d", d, offs[100], offs[101])
	}
	if p.InLast = false; p.Cuts() {
		t.Error("damage before the last file cuts nothing at the end")
	}
}

// TestScanTornWrite: the ways a crash leaves the end of a log (a record
// half written; a zero sector among records of a write never synced) do
// not read as damage recovery must refuse.
func TestScanTornWrite(t *testing.T) {
	b, offs := build(1<<20, lens(300, 200)...)
	half := offs[250] + 100
	clear(b[half:])
	f, _ := Scan("log.0000000001", b)
	p := &Problem{File: f.Name, Damage: f.Damage, InLast: true}
	if f.Damage == nil || f.Damage.Resumed != 0 || !p.Torn() || p.Cuts() {
		t.Fatalf("half-written last record: %+v", f.Damage)
	}
	b, _ = build(1<<20, lens(300, 200)...)
	sector := (offs[150]/SectorSize + 1) * SectorSize
	clear(b[sector : sector+2*SectorSize])
	f, _ = Scan("log.0000000001", b)
	p = &Problem{File: f.Name, Damage: f.Damage, InLast: true}
	if f.Damage == nil || f.Damage.Resumed == 0 || !f.Damage.ZeroSector || !p.Torn() || p.Cuts() {
		t.Fatalf("zero sectors among records: %+v", f.Damage)
	}
}

func TestScanNotALog(t *testing.T) {
	if _, err := Scan("log.0000000001", []byte("not a log file at all, but some text")); !errors.Is(err, ErrNotLog) {
		t.Errorf("text: %v, want ErrNotLog", err)
	}
	f, err := Scan("log.0000000002", make([]byte, 4096))
	if err != nil || !f.Unwritten {
		t.Errorf("zeros: %+v %v, want unwritten", f, err)
	}
}

// TestScanDirGaps: missing files between written ones are a gap; a zero
// file (written ahead, or left by an interrupted switch) is not.
func TestScanDirGaps(t *testing.T) {
	dir := t.TempDir()
	b, _ := build(64<<10, lens(20, 100)...)
	for _, n := range []int{3, 4, 7} {
		if err := os.WriteFile(filepath.Join(dir, FileName(n)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, FileName(1)), make([]byte, 4096), 0o644)
	os.WriteFile(filepath.Join(dir, FileName(8)), make([]byte, 4096), 0o644)
	l, err := ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Missing) != 2 || l.Missing[0] != 5 || l.Missing[1] != 6 {
		t.Errorf("missing %v, want [5 6]", l.Missing)
	}
	if i := l.Last(); i < 0 || l.Files[i].Number != 7 {
		t.Errorf("last written file index %d", i)
	}
	if ps := l.Problems(dir); len(ps) != 1 || ps[0].Damage != nil {
		t.Errorf("problems %v", ps)
	}
	// Damage in log 4: not in the last file; the records of log 7 follow.
	c := append([]byte(nil), b...)
	c[2000] ^= 1
	os.WriteFile(filepath.Join(dir, FileName(4)), c, 0o644)
	l, _ = ScanDir(dir)
	ps := l.Problems(dir)
	if len(ps) != 2 || ps[1].File != FileName(4) || ps[1].InLast || ps[1].LaterRecords != 21 {
		t.Fatalf("problems %+v", ps[1])
	}
	if p, err := ScanEnd(dir); p != nil || err != nil {
		t.Errorf("ScanEnd with an intact last file: %v %v", p, err)
	}
	os.WriteFile(filepath.Join(dir, FileName(7)), c, 0o644)
	if p, err := ScanEnd(dir); p == nil || p.File != FileName(7) || err != nil {
		t.Errorf("ScanEnd with a damaged last file: %v %v", p, err)
	}
	// A file with no log header is listed, left to the format reader.
	os.WriteFile(filepath.Join(dir, FileName(5)), []byte("not a log, not zeros"), 0o644)
	l, err = ScanDir(dir)
	if err != nil || !l.Files[3].NotLog || len(l.Missing) != 1 {
		t.Errorf("a file that is no log: %+v %v", l, err)
	}
}

// FuzzScan: any bytes scan without a panic, and what the scan says stays
// inside the file.
func FuzzScan(f *testing.F) {
	b, offs := build(8<<10, lens(30, 60)...)
	f.Add(b)
	c := append([]byte(nil), b...)
	c[offs[10]+3] ^= 0xff
	f.Add(c)
	d := append([]byte(nil), b...)
	clear(d[1024:1536])
	f.Add(d)
	f.Add([]byte{})
	f.Add(b[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := Scan("log.0000000001", b)
		if err != nil {
			if !errors.Is(err, ErrNotLog) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if fl.End > fl.Size || fl.End < 0 {
			t.Fatalf("end %d of %d bytes", fl.End, fl.Size)
		}
		if d := fl.Damage; d != nil {
			if d.Offset != fl.End || d.Resumed != 0 && (d.Resumed <= d.Offset || d.Resumed+d.IntactBytes > fl.Size) {
				t.Fatalf("damage %+v in %d bytes, end %d", d, fl.Size, fl.End)
			}
		}
	})
}

// FuzzMaxPageLSN: any bytes read as a database file without a panic.
func FuzzMaxPageLSN(f *testing.F) {
	meta := make([]byte, 4096)
	binary.LittleEndian.PutUint32(meta[metaPageSizeAt:], 4096)
	binary.LittleEndian.PutUint32(meta[0:], 3)
	f.Add(append(meta, make([]byte, 4096)...))
	f.Add(meta[:100])
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "objects.db")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := MaxPageLSN(path)
		if err == nil && p.LSN != (LSN{}) && int64(p.Page+1)*512 > int64(len(b)) {
			t.Fatalf("page %d of a %d-byte file", p.Page, len(b))
		}
	})
}
