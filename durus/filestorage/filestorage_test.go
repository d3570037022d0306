package filestorage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testpy"
)

// python returns an interpreter that can import durus, or fails the test
// (CI installs Durus 4.3; a missing Durus must not pass silently).
func python(t testing.TB) string { return testpy.Python(t, "durus") }

const script = "testdata/durusfiles.py"

func runPy(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(python(t), append([]string{script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %s %v: %v\n%s", script, args, err, stderr.String())
	}
	return string(out)
}

// readDump parses int4 length + record framing into oid -> record.
func readDump(t testing.TB, path string) map[uint64][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64][]byte{}
	for len(b) > 0 {
		n := binary.BigEndian.Uint32(b)
		rec := b[4 : 4+n]
		out[record.OID(rec)] = rec
		b = b[4+n:]
	}
	return out
}

// readAll imports a file the way the engine does: the last yield wins.
func readAll(t testing.TB, path string, opts ReadOptions) (map[uint64][]byte, *Reader, int, error) {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		return nil, nil, 0, err
	}
	defer r.Close() // Stats still work after Close
	got := map[uint64][]byte{}
	n := 0
	err = r.Records(context.Background(), func(rec []byte) error {
		if _, err := record.Parse(rec); err != nil {
			t.Fatalf("yielded a malformed record: %v", err)
		}
		got[record.OID(rec)] = rec
		n++
		return nil
	})
	return got, r, n, err
}

func sameRecords(t testing.TB, what string, got, want map[uint64][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d (got oids %v, want %v)", what, len(got), len(want), slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for oid, w := range want {
		if !bytes.Equal(got[oid], w) {
			t.Fatalf("%s: oid %d differs:\n got % X\nwant % X", what, oid, got[oid], w)
		}
	}
}

// makeDurus runs durusfiles.py mode and returns the file and its dump.
func makeDurus(t testing.TB, mode string) (string, map[uint64][]byte) {
	t.Helper()
	dir := t.TempDir()
	file, dump := filepath.Join(dir, mode+".durus"), filepath.Join(dir, mode+".dump")
	runPy(t, mode, file, dump)
	return file, readDump(t, dump)
}

// C61: a Shelf written by Durus 4.3 with a pack (holes) and appended
// transactions yields exactly what FileStorage.load returns.
func TestReadShelfDurus43(t *testing.T) {
	for _, mode := range []string{"shelf", "appended"} {
		t.Run(mode, func(t *testing.T) {
			file, want := makeDurus(t, mode)
			got, r, n, err := readAll(t, file, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, file, got, want)
			st := r.Stats()
			t.Logf("%d records yielded, %d current; N = %d, W = %d, base ends %d, transactions from %d, size %d",
				n, len(got), r.shelf.n, r.shelf.w, r.shelf.s, r.shelf.txnStart, st.Size)
			if !st.Done || st.Offset != st.Size || st.Records != int64(n) {
				t.Errorf("stats %+v", st)
			}
			if r.shelf.txnStart == st.Size {
				t.Errorf("no appended transactions")
			}
			if mode == "shelf" && int64(len(got)) >= r.shelf.n {
				t.Errorf("no holes")
			}
			if mode == "appended" && n <= len(got) {
				t.Errorf("no superseded versions were read")
			}
		})
	}
}

// C62: DFS20 from Durus 4.3 (protocol-4 index, live) and from Durus 4.2 on
// Python 2 (protocol-0 index with oids containing bytes ≥ 0x80, ' and ",
// committed in testdata).
func TestReadDFS20(t *testing.T) {
	file, want := makeDurus(t, "dfs20")
	got, r, n, err := readAll(t, file, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, file, got, want)
	if r.dfs.txnStart == r.size || n <= len(r.dfs.index) {
		t.Errorf("no transactions after the index")
	}
	high := 0
	for oid := range got {
		if oid >= 0x80<<32 {
			high++
		}
	}
	if high == 0 {
		t.Errorf("no oid with bytes ≥ 0x80")
	}
	got, _, _, err = readAll(t, "testdata/py2.dfs20", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "py2.dfs20", got, readDump(t, "testdata/py2.dfs20.dump"))
	b, _ := os.ReadFile("testdata/py2.dfs20")
	if !bytes.Contains(b, []byte("DFS20")) {
		t.Fatal("bad golden")
	}
}

// C64: a file locked by a running Durus writer is refused unless forced.
func TestReadLocked(t *testing.T) {
	file, want := makeDurus(t, "shelf")
	cmd := exec.Command(python(t), script, "hold", file)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	if _, err := Open(file, ReadOptions{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("open of a locked file: %v", err)
	} else {
		t.Log(err)
	}
	got, r, _, err := readAll(t, file, ReadOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Forced() {
		t.Error("Forced() is false")
	}
	sameRecords(t, "forced", got, want)
	// While we hold the shared lock, Durus cannot open the file for writing.
	stdin.Close()
	cmd.Wait()
	r2, err := Open(file, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	out, err := exec.Command(python(t), script, "hold", file).CombinedOutput()
	if err == nil {
		t.Errorf("Durus opened a file the reader holds: %s", out)
	}
}

// C64: format detection.
func TestFormats(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, r, _, err := readAll(t, write("empty", nil), ReadOptions{})
	if err != nil || len(got) != 0 || r.Format() != FormatEmpty {
		t.Fatalf("empty: %v %d", err, len(got))
	}
	for name, b := range map[string][]byte{
		"dfs10":   []byte("DFS10\x00\x00\x00\x00\x00\x00\x00\x00\x0e"),
		"sqlite":  []byte("SQLite format 3\x00more"),
		"unknown": []byte("hello, world! this is not durus"),
		"short":   []byte("SHE"),
	} {
		_, err := Open(write(name, b), ReadOptions{})
		var fe *FormatError
		if !errors.Is(err, ErrUnsupported) || !errors.As(err, &fe) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(fe.Head, b[:min(16, len(b))]) {
			t.Errorf("%s: head % X", name, fe.Head)
		}
		t.Logf("%s: %v", name, err)
	}
	for name, b := range map[string][]byte{
		"shelf header": []byte("SHELF-1\n\x00\x00"),
		"shelf L0":     append([]byte("SHELF-1\n\x00\x00\x00\x00\x00\x00\x01\x00"), make([]byte, 40)...),
		"dfs20 header": []byte("DFS20\x00\x00"),
		"dfs20 X":      []byte("DFS20\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00"),
	} {
		_, err := Open(write(name, b), ReadOptions{})
		var de *DamageError
		if !errors.As(err, &de) || !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// txnStarts lists the offsets of the appended (Shelf) or post-index (DFS20)
// transactions of a good file.
func txnStarts(t testing.TB, path string) []int64 {
	t.Helper()
	r, err := Open(path, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := os.ReadFile(path)
	var starts []int64
	switch r.Format() {
	case FormatShelf:
		for p := r.shelf.txnStart; p < int64(len(b)); p += 8 + int64(binary.BigEndian.Uint64(b[p:])) {
			starts = append(starts, p)
		}
	case FormatDFS20:
		for p := r.dfs.txnStart; p < int64(len(b)); {
			starts = append(starts, p)
			for {
				rl := int64(binary.BigEndian.Uint32(b[p:]))
				p += 4 + rl
				if rl == 0 {
					break
				}
			}
		}
	}
	return starts
}

// C63: a truncated last transaction fails with its offset; with
// IgnoreIncompleteTail everything before it is imported.
func TestTruncatedTail(t *testing.T) {
	for _, mode := range []string{"shelf", "dfs20"} {
		t.Run(mode, func(t *testing.T) {
			file, _ := makeDurus(t, mode)
			b, _ := os.ReadFile(file)
			starts := txnStarts(t, file)
			if len(starts) < 2 {
				t.Fatalf("only %d transactions", len(starts))
			}
			last := starts[len(starts)-1]
			dir := t.TempDir()
			clean := filepath.Join(dir, "clean")
			os.WriteFile(clean, b[:last], 0o644)
			want, _, _, err := readAll(t, clean, ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, cut := range []int64{last + 1, last + 7, last + 8, last + 20, int64(len(b)) - 1} {
				p := filepath.Join(dir, fmt.Sprint("cut", cut))
				os.WriteFile(p, b[:cut], 0o644)
				_, _, _, err := readAll(t, p, ReadOptions{})
				var de *DamageError
				if !errors.As(err, &de) || de.Offset != last || !de.Incomplete || de.Path != p {
					t.Fatalf("cut at %d: %v, want damage at %d", cut, err, last)
				}
				got, r, _, err := readAll(t, p, ReadOptions{IgnoreIncompleteTail: true})
				if err != nil {
					t.Fatalf("cut at %d, ignoring the tail: %v", cut, err)
				}
				sameRecords(t, p, got, want)
				sk := r.Stats().Skipped
				if sk == nil || sk.Offset != last || sk.Bytes != cut-last {
					t.Fatalf("cut at %d: skip %+v", cut, sk)
				}
			}
			t.Logf("last transaction at %d: %v", last, err)
		})
	}
}

// A crash inside a Shelf commit leaves a zero TL followed by records.
func TestInterruptedCommit(t *testing.T) {
	file, want := makeDurus(t, "shelf")
	b, _ := os.ReadFile(file)
	rec := record.Build(3, []byte("state"), 1)
	var tail []byte
	tail = binary.BigEndian.AppendUint64(tail, 0)
	tail = binary.BigEndian.AppendUint64(tail, uint64(8+len(rec)))
	tail = binary.BigEndian.AppendUint64(tail, 3)
	tail = append(tail, rec...)
	p := filepath.Join(t.TempDir(), "interrupted")
	os.WriteFile(p, append(slices.Clone(b), tail...), 0o644)
	_, _, _, err := readAll(t, p, ReadOptions{})
	var de *DamageError
	if !errors.As(err, &de) || !de.Interrupted || de.Offset != int64(len(b))+8 || !strings.Contains(err.Error(), "interrupted commit") {
		t.Fatalf("interrupted commit: %v", err)
	}
	t.Log(err)
	got, _, _, err := readAll(t, p, ReadOptions{IgnoreIncompleteTail: true})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "ignoring the interrupted commit", got, want)
}

// Damage in the middle of a file is an error even with IgnoreIncompleteTail.
func TestDamage(t *testing.T) {
	shelf, err := buildShelf(t, map[uint64][]byte{0: record.Build(0, []byte("AB"), 2), 2: record.Build(2, []byte("C"))})
	if err != nil {
		t.Fatal(err)
	}
	// Word offsets: the worked example, words at 107..110.
	cases := map[string]func(b []byte) []byte{
		"blank word":        func(b []byte) []byte { b[108] = 0xFF; return b },
		"word out of range": func(b []byte) []byte { b[108] = 0x60; return b },
		"word to wrong rec": func(b []byte) []byte { b[107] = 0x36; return b },
		"word inside rec":   func(b []byte) []byte { b[107] = 0x11; return b },
		"record oid":        func(b []byte) []byte { b[0x27] = 9; return b },
		"record R2":         func(b []byte) []byte { b[0x2B] = 0x30; return b },
		"base RL":           func(b []byte) []byte { b[0x17] = 0x70; return b },
		"txn record R4": func(b []byte) []byte {
			rec := record.Build(5, []byte("x"))
			b = binary.BigEndian.AppendUint64(b, uint64(16+len(rec)))
			b = binary.BigEndian.AppendUint64(b, uint64(8+len(rec)))
			b = binary.BigEndian.AppendUint64(b, 6)
			return append(b, rec...)
		},
	}
	for name, f := range cases {
		p := filepath.Join(t.TempDir(), "f")
		os.WriteFile(p, f(slices.Clone(shelf)), 0o644)
		_, _, _, err := readAll(t, p, ReadOptions{IgnoreIncompleteTail: true})
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
	dfs := buildDFS20(t, map[uint64][]byte{0: record.Build(0, []byte("AB"), 2), 2: record.Build(2, []byte("C"))})
	// Layout: 14: RL 22 · rec0; 40: RL 13 · rec2; 57: terminator; X = 61.
	dcases := map[string]func(b []byte) []byte{
		"entry RL 5":   func(b []byte) []byte { b[17] = 5; return b },
		"index offset": func(b []byte) []byte { b[13] = 200; return b },
		"post RL 3":    func(b []byte) []byte { return append(b, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0) },
		"post R3": func(b []byte) []byte {
			rec := append(record.Build(7, []byte("x")), 1, 2)
			b = binary.BigEndian.AppendUint32(b, uint32(len(rec)))
			return append(append(b, rec...), 0, 0, 0, 0)
		},
	}
	for name, f := range dcases {
		p := filepath.Join(t.TempDir(), "f")
		os.WriteFile(p, f(slices.Clone(dfs)), 0o644)
		_, _, _, err := readAll(t, p, ReadOptions{IgnoreIncompleteTail: true})
		if !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func scanOf(recs map[uint64][]byte) func(yield func(uint64, []byte) error) error {
	return func(yield func(uint64, []byte) error) error {
		for _, oid := range slices.Sorted(maps.Keys(recs)) {
			if err := yield(oid, recs[oid]); err != nil {
				return err
			}
		}
		return nil
	}
}

func buildShelf(t testing.TB, recs map[uint64][]byte) ([]byte, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.durus")
	if _, err := WriteShelf(p, WriteOptions{}, scanOf(recs)); err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

func buildDFS20(t testing.TB, recs map[uint64][]byte) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "out.dfs20")
	if _, err := WriteDFS20(p, WriteOptions{}, scanOf(recs)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, f := range strings.Fields(s) {
		if f == "…" {
			continue
		}
		if rep, cnt, ok := strings.Cut(f, "×"); ok {
			v, _ := strconv.ParseUint(rep, 16, 8)
			n, _ := strconv.Atoi(cnt)
			out = append(out, bytes.Repeat([]byte{byte(v)}, n)...)
			continue
		}
		v, err := strconv.ParseUint(f, 16, 8)
		if err != nil {
			t.Fatalf("%q: %v", f, err)
		}
		out = append(out, byte(v))
	}
	return out
}

// newOIDs asks Durus 4.3 to open path, compare every record with want, and
// hand out k new oids.
func newOIDs(t testing.TB, path string, want map[uint64][]byte, k int) []uint64 {
	t.Helper()
	dump := path + ".dump"
	var b []byte
	for _, oid := range slices.Sorted(maps.Keys(want)) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(want[oid])))
		b = append(b, want[oid]...)
	}
	if err := os.WriteFile(dump, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, l := range strings.Fields(runPy(t, "check", path, dump, strconv.Itoa(k))) {
		v, err := strconv.ParseUint(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// C67: the worked example of §11.2 byte for byte, and the 40-byte empty
// Shelf; Durus 4.3 opens both.
func TestWriteShelfExamples(t *testing.T) {
	recs := map[uint64][]byte{0: record.Build(0, []byte("AB"), 2), 2: record.Build(2, []byte("C"))}
	want := hexBytes(t, `53 48 45 4C 46 2D 31 0A
		00 00 00 00 00 00 00 43
		00 00 00 00 00 00 00 1E  00×8
		00×8 00 00 00 02 41 42  00 00 00 00 00 00 00 02
		00 00 00 00 00 00 00 15  00×7 02
		00×7 02 00 00 00 01 43
		00 00 00 00 00 00 00 14
		00 00 00 00 00 00 00 01  00×7 04
		10 56 36 54`)
	if len(want) != 111 {
		t.Fatalf("example is %d bytes", len(want))
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "example.durus")
	st, err := WriteShelf(p, WriteOptions{}, scanOf(recs))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, want) {
		t.Fatalf("worked example:\n got % X\nwant % X", got, want)
	}
	if st.Size != 111 || st.MapWords != 4 || st.WordBytes != 1 || st.Holes != 2 || st.Records != 2 {
		t.Errorf("stats %+v", st)
	}
	if oids := newOIDs(t, p, recs, 4); !slices.Equal(oids, []uint64{1, 3, 4, 5}) {
		t.Errorf("Durus's next oids %v, want [1 3 4 5]", oids)
	}
	// Empty database.
	e := filepath.Join(dir, "empty.durus")
	if _, err := WriteShelf(e, WriteOptions{}, scanOf(nil)); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(e)
	want = hexBytes(t, `53 48 45 4C 46 2D 31 0A 00×8 00×7 10 00×7 01 00×8`)
	if !bytes.Equal(got, want) {
		t.Fatalf("empty: % X", got)
	}
	if oids := newOIDs(t, e, nil, 3); !slices.Equal(oids, []uint64{0, 1, 2}) {
		t.Errorf("Durus's next oids for the empty shelf %v", oids)
	}
	if recs, _, _, err := readAll(t, e, ReadOptions{}); err != nil || len(recs) != 0 {
		t.Errorf("empty: %v %d", err, len(recs))
	}
	// Empty DFS20.
	e = filepath.Join(dir, "empty.dfs20")
	if _, err := WriteDFS20(e, WriteOptions{}, scanOf(nil)); err != nil {
		t.Fatal(err)
	}
	if oids := newOIDs(t, e, nil, 2); !slices.Equal(oids, []uint64{0, 1}) {
		t.Errorf("Durus's next oids for the empty DFS20 file %v", oids)
	}
	if recs, _, _, err := readAll(t, e, ReadOptions{}); err != nil || len(recs) != 0 {
		t.Errorf("empty dfs20: %v %d", err, len(recs))
	}
}

// C65, C66, C68: export the records of a real Durus database (with holes,
// oids with bytes ≥ 0x80), open with Durus 4.3, compare, check the oid
// allocation; import(export) gives the records back.
func TestExportDurus(t *testing.T) {
	_, recs := makeDurus(t, "shelf")
	_, recs2 := makeDurus(t, "dfs20")
	maps.Copy(recs, recs2) // both sets, so oids are large and sparse
	maxOID := slices.Max(slices.Collect(maps.Keys(recs)))
	dir := t.TempDir()

	p := filepath.Join(dir, "export.durus")
	st, err := WriteShelf(p, WriteOptions{MaxMapBytes: 1 << 30}, scanOf(recs))
	if err == nil {
		t.Fatalf("a %d-word map passed MaxMapBytes", st.MapWords)
	}
	// Shelf: keep the oids below 2^20 (the DFS20 oids would need a huge map).
	small := map[uint64][]byte{}
	for oid, rec := range recs {
		if oid < 1<<20 {
			small[oid] = rec
		}
	}
	st, err = WriteShelf(p, WriteOptions{}, scanOf(small))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, err := readAll(t, p, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "import(export shelf)", got, small)
	n := st.MapWords
	var holes []uint64
	for j := n - 2; j >= 0; j-- {
		if _, ok := small[uint64(j)]; !ok {
			holes = append(holes, uint64(j))
		}
	}
	wantOIDs := append(holes, uint64(n-1), uint64(n), uint64(n+1), uint64(n+2))
	if len(holes) == 0 {
		t.Fatal("no holes")
	}
	if oids := newOIDs(t, p, small, len(wantOIDs)); !slices.Equal(oids, wantOIDs) {
		t.Errorf("Durus's next oids\n %v\nwant %v", oids, wantOIDs)
	}
	t.Logf("shelf export: %+v", st)

	d := filepath.Join(dir, "export.dfs20")
	st, err = WriteDFS20(d, WriteOptions{}, scanOf(recs))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, err = readAll(t, d, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "import(export dfs20)", got, recs)
	if oids := newOIDs(t, d, recs, 2); !slices.Equal(oids, []uint64{maxOID + 1, maxOID + 2}) {
		t.Errorf("Durus's next oids %v, want %d, %d", oids, maxOID+1, maxOID+2)
	}
	// Durus 4.2 on Python 2, when an interpreter is named (C66).
	if py2 := os.Getenv("DURUSBDB_PYTHON2"); py2 != "" {
		out, err := exec.Command(py2, script, "check", d, d+".dump", "0").CombinedOutput()
		if err != nil {
			t.Errorf("Durus 4.2 on Python 2: %v\n%s", err, out)
		}
	}
	t.Logf("dfs20 export: %+v", st)
}

// C68: an interrupted export leaves nothing under the final name (and no
// temporary file); an existing target is refused unless forced.
func TestExportInterrupted(t *testing.T) {
	recs := map[uint64][]byte{}
	for i := uint64(0); i < 3000; i += 3 {
		recs[i] = record.Build(i, bytes.Repeat([]byte{byte(i)}, int(i%200)), i+3)
	}
	boom := errors.New("boom")
	for _, format := range []Format{FormatShelf, FormatDFS20} {
		write := WriteShelf
		if format == FormatDFS20 {
			write = WriteDFS20
		}
		for _, stage := range []string{"scan", "base", "map", "sync", "rename"} {
			dir := t.TempDir()
			p := filepath.Join(dir, "out")
			opts := WriteOptions{hook: func(s string) error {
				if s == stage {
					return boom
				}
				return nil
			}}
			scan := scanOf(recs)
			if stage == "scan" {
				scan = func(yield func(uint64, []byte) error) error {
					yield(0, recs[0])
					yield(3, recs[3])
					return boom
				}
			}
			if _, err := write(p, opts, scan); !errors.Is(err, boom) {
				t.Fatalf("%v %s: %v", format, stage, err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("%v %s: left %v", format, stage, ents)
			}
		}
		dir := t.TempDir()
		p := filepath.Join(dir, "out")
		if _, err := write(p, WriteOptions{}, scanOf(recs)); err != nil {
			t.Fatal(err)
		}
		if _, err := write(p, WriteOptions{}, scanOf(recs)); !errors.Is(err, ErrExists) {
			t.Fatalf("existing target: %v", err)
		}
		if _, err := write(p, WriteOptions{Force: true}, scanOf(nil)); err != nil {
			t.Fatalf("forced: %v", err)
		}
		if got, _, _, err := readAll(t, p, ReadOptions{}); err != nil || len(got) != 0 {
			t.Fatalf("forced overwrite: %v %d", err, len(got))
		}
		// Order and record checks.
		bad := filepath.Join(dir, "bad")
		if _, err := write(bad, WriteOptions{}, func(yield func(uint64, []byte) error) error {
			yield(5, record.Build(5, nil))
			return yield(4, record.Build(4, nil))
		}); !errors.Is(err, ErrOrder) {
			t.Fatalf("order: %v", err)
		}
		if _, err := write(bad, WriteOptions{}, func(yield func(uint64, []byte) error) error {
			return yield(5, record.Build(6, nil))
		}); !errors.Is(err, record.ErrMalformed) {
			t.Fatalf("R4: %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("left %v", ents)
		}
	}
}

// envExportChild makes the test binary the child of TestExportKilled
// (format:path) instead of running tests: TestMain dispatches on it, so
// the child is not a listed test that passes.
const envExportChild = "DURUSBDB_EXPORT_CHILD"

// TestMain runs the export child when envExportChild is set, else the tests.
func TestMain(m *testing.M) {
	if spec := os.Getenv(envExportChild); spec != "" {
		exportChild(spec)
		os.Exit(1) // exportChild blocks until killed
	}
	os.Exit(m.Run())
}

// C68: a process killed while exporting leaves no file under the final name.
func TestExportKilled(t *testing.T) {
	for _, format := range []string{"shelf", "dfs20"} {
		dir := t.TempDir()
		p := filepath.Join(dir, "out")
		child := proc.StartChildT(t, nil, envExportChild+"="+format+":"+p)
		cmd, stdout := child.Cmd, child.Stdout
		sc := bufio.NewScanner(stdout)
		started := false
		for sc.Scan() {
			if sc.Text() == "writing" {
				started = true
				break
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if !started {
			t.Fatal("child did not start")
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s: file under the final name after kill: %v", format, err)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".out.tmp-") {
				t.Fatalf("unexpected %s", e.Name())
			}
		}
	}
}

// exportChild is the child of TestExportKilled: it writes records, says
// "writing", and blocks halfway until it is killed.
func exportChild(spec string) {
	format, p, _ := strings.Cut(spec, ":")
	write := WriteShelf
	if format == "dfs20" {
		write = WriteDFS20
	}
	_, err := write(p, WriteOptions{}, func(yield func(uint64, []byte) error) error {
		for i := uint64(0); i < 100; i++ {
			if err := yield(i, record.Build(i, make([]byte, 100000))); err != nil {
				return err
			}
		}
		fmt.Println("writing")
		os.Stdout.Sync()
		time.Sleep(time.Hour) // not a wait: the parent kills the child here
		return nil
	})
	fmt.Fprintln(os.Stderr, "export child:", err)
}

// An export to a directory is refused before anything is written, with
// or without Force, naming the directory; a write error names its file
// once.
func TestWriteTargetDirectory(t *testing.T) {
	dir := t.TempDir()
	for _, force := range []bool{false, true} {
		_, err := WriteShelf(dir, WriteOptions{Force: force}, scanOf(nil))
		if !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("export to a directory (force %v): %v", force, err)
		}
	}
	pe := &fs.PathError{Op: "write", Path: "/x/out.durus", Err: syscall.ENOSPC}
	if got := writeErr("/x/out.durus", pe).Error(); strings.Count(got, "/x/out.durus") != 1 {
		t.Fatalf("write error %q names the file more than once", got)
	}
}

// An export removes the temporary files that killed exports to the same
// path left (unlocked), never one a running export holds.
func TestExportRemovesKilledTemps(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out")
	child := proc.StartChildT(t, nil, envExportChild+"=shelf:"+p)
	sc := bufio.NewScanner(child.Stdout)
	for sc.Scan() && sc.Text() != "writing" {
	}
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, ".out.tmp-*"))
		return m
	}
	if len(temps()) != 1 {
		t.Fatalf("a running export has temporary files %v, want one", temps())
	}
	recs := func(yield func(uint64, []byte) error) error { return yield(0, record.Build(0, []byte("root"))) }
	if _, err := WriteShelf(p, WriteOptions{}, recs); err != nil {
		t.Fatal(err)
	}
	if len(temps()) != 1 {
		t.Fatalf("an export removed the temporary file of one still running: %v left", temps())
	}
	child.Cmd.Process.Kill()
	child.Cmd.Wait()
	if _, err := WriteShelf(p, WriteOptions{Force: true}, recs); err != nil {
		t.Fatal(err)
	}
	if left := temps(); len(left) != 0 {
		t.Fatalf("the temporary file of a killed export is still there after the next export: %v", left)
	}
}
