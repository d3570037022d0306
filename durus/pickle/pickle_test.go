package pickle

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/internal/testpy"
)

// python returns an interpreter that can import durus, or fails the test
// (CI installs Durus 4.3; a missing Durus must not pass silently).
func python(t testing.TB) string { return testpy.Python(t, "durus") }

func runPy(t testing.TB, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(python(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// readRecords parses int4 length + record framing.
func readRecords(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var recs [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("truncated records file")
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) {
			t.Fatalf("truncated records file")
		}
		recs = append(recs, b[4:4+n])
		b = b[4+n:]
	}
	return recs
}

func refsOf(rec []byte) []uint64 {
	_, _, refs, _ := split(rec)
	var out []uint64
	for i := 0; i+8 <= len(refs); i += 8 {
		out = append(out, binary.BigEndian.Uint64(refs[i:]))
	}
	return out
}

// checkCorpus asserts C57 for every record and that the corpus covers the
// cases C57 names, so the test cannot pass vacuously.
func checkCorpus(t *testing.T, recs [][]byte, nested bool) {
	t.Helper()
	var compressed, plain, bigOID, highByte, repeated, ownClass, withRefs, nestedSeen int
	for _, rec := range recs {
		oid := binary.BigEndian.Uint64(rec)
		p, err := ScanRefs(rec, 0)
		if err != nil {
			t.Fatalf("oid %d: %v", oid, err)
		}
		if err := CheckRefs(rec); err != nil {
			t.Fatalf("C57: %v", err)
		}
		ps, rs := oidSet(p, oid), oidSet(refsOf(rec), oid)
		if !slices.Equal(ps, rs) {
			t.Fatalf("oid %d: P %v refs %v", oid, ps, rs)
		}
		if len(rs) > 0 {
			withRefs++
		}
		_, data, _, _ := split(rec)
		m := machine{in: data, memo: map[uint64]value{}}
		cls, err := m.run()
		if err != nil {
			t.Fatal(err)
		}
		if data[m.pos] == 0x78 {
			compressed++
		} else {
			plain++
		}
		if cls.k != kGlobal {
			nestedSeen++
		}
		if len(slices.Compact(slices.Sorted(slices.Values(p)))) < len(p) {
			repeated++
		}
		for _, r := range append(p, oid) {
			if r >= 1<<32 {
				bigOID++
			}
			for _, c := range binary.BigEndian.AppendUint64(nil, r) {
				if c >= 0x80 {
					highByte++
					break
				}
			}
		}
		// A reference to an object whose record has the same class.
		for _, r := range rs {
			for _, other := range recs {
				if binary.BigEndian.Uint64(other) == r && classOf(other) == classOf(rec) {
					ownClass++
				}
			}
		}
	}
	t.Logf("%d records: %d compressed, %d uncompressed, %d with refs, %d with repeated refs, %d refs to own class, %d oids ≥ 2^32, %d oids with bytes ≥ 0x80, %d nested classes",
		len(recs), compressed, plain, withRefs, repeated, ownClass, bigOID, highByte, nestedSeen)
	if compressed == 0 || plain == 0 || withRefs == 0 || repeated == 0 || ownClass == 0 || bigOID == 0 || highByte == 0 {
		t.Fatalf("corpus does not cover every case of C57")
	}
	if nested && nestedSeen == 0 {
		t.Fatalf("corpus has no nested-class record")
	}
}

func classOf(rec []byte) string {
	_, data, _, _ := split(rec)
	m := machine{in: data, memo: map[uint64]value{}}
	v, err := m.run()
	if err != nil || v.k != kGlobal {
		return "?"
	}
	return string(v.b) + "." + string(v.b2)
}

// TestScanDurus43 generates records with Durus 4.3 (Python 3) and checks
// set(P) − {oid} = set(refs) − {oid} for each (C57).
func TestScanDurus43(t *testing.T) {
	out := filepath.Join(t.TempDir(), "records.bin")
	runPy(t, "testdata/gen_records.py", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	checkCorpus(t, readRecords(t, b), true)
}

// TestScanDurus42 checks the committed records written by Durus 4.2 on
// Python 2.7 (testdata/records_py2.bin, made by gen_records.py).
func TestScanDurus42(t *testing.T) {
	b, err := os.ReadFile("testdata/records_py2.bin")
	if err != nil {
		t.Fatal(err)
	}
	checkCorpus(t, readRecords(t, b), false)
}

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, `"`) {
			u, err := strconv.Unquote(f)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, u...)
			continue
		}
		v, err := strconv.ParseUint(f, 16, 64)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := len(f)/2 - 1; i >= 0; i-- {
			out = append(out, byte(v>>(8*i)))
		}
	}
	return out
}

func build(oid uint64, data []byte, refs ...uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, oid)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	for _, r := range refs {
		b = binary.BigEndian.AppendUint64(b, r)
	}
	return b
}

// The two examples of PROTOCOL.md §2.2.
func TestScanSpecExamples(t *testing.T) {
	py3 := hexBytes(t, `80 02 63 "durus.persistent_dict\nPersistentDict\n" 71 00 2E
        80 02 7D 71 01 58 04000000 "data" 71 02 7D 71 03 58 01000000 "a" 71 04
        63 "_codecs\nencode\n" 71 05  58 08000000 00 00 00 00 00 00 00 01 71 06
        58 06000000 "latin1" 71 07 86 71 08 52 71 09
        63 "durus.persistent\nPersistent\n" 71 0A 86 71 0B 51   73 73 2E`)
	py2 := hexBytes(t, `80 02 63 "durus.persistent_dict\nPersistentDict\n" 71 01 2E
        80 02 7D 71 02 55 04 "data" 71 03 7D 71 04 55 01 "a"
        55 08 00 00 00 00 00 00 00 01 71 05
        63 "durus.persistent\nPersistent\n" 71 06 86 51   73 73 2E`)
	for name, data := range map[string][]byte{"py3": py3, "py2": py2} {
		rec := build(0, data, 1)
		p, err := ScanRefs(rec, 0)
		if err != nil || !slices.Equal(p, []uint64{1}) {
			t.Errorf("%s: P = %v, %v", name, p, err)
		}
		if err := CheckRefs(rec); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Compressed form of the Python 3 example, with trailing junk after the
	// zlib stream (ignored, as Durus ignores it).
	clsEnd := bytes.Index(py3, []byte{0x71, 0x00, 0x2E}) + 3
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(py3[clsEnd:])
	zw.Close()
	data := append(append(slices.Clone(py3[:clsEnd]), z.Bytes()...), "junk"...)
	if err := CheckRefs(build(0, data, 1)); err != nil {
		t.Errorf("compressed: %v", err)
	}
	// Missing ref and extra ref.
	err := CheckRefs(build(0, py3, 7, 0))
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrRefMismatch) || !slices.Equal(me.Missing, []uint64{1}) || !slices.Equal(me.Extra, []uint64{7}) {
		t.Errorf("mismatch: %v", err)
	}
	// Own oid and repeats in refs are ignored.
	if err := CheckRefs(build(1, py3, 1, 1)); err != nil {
		t.Errorf("self ref: %v", err)
	}
}

// C58: non-pickle data is malformed, never a panic.
func TestScanMalformed(t *testing.T) {
	cls := []byte("\x80\x02cmod\nK\nq\x00.")
	cases := map[string][]byte{
		"ok":           build(5, []byte("ok")),
		"empty":        build(5, nil),
		"short":        []byte{1, 2, 3},
		"r2":           append(binary.BigEndian.AppendUint64(nil, 5), 0, 0, 0, 9),
		"r3":           append(build(5, cls), 1, 2),
		"no state":     build(5, cls),
		"trailing":     build(5, append(slices.Clone(cls), "N.x"...)),
		"unset get":    build(5, append(slices.Clone(cls), "h\x07."...)),
		"bad utf8":     build(5, append(slices.Clone(cls), "X\x02\x00\x00\x00\xff\xfe."...)),
		"persid":       build(5, append(slices.Clone(cls), "Pabc\n."...)),
		"bad persid":   build(5, append(slices.Clone(cls), "U\x03abcN\x86Q."...)),
		"two values":   build(5, append(slices.Clone(cls), "NN."...)),
		"mark at stop": build(5, append(slices.Clone(cls), "(."...)),
		"huge length":  build(5, append(slices.Clone(cls), "B\xff\xff\xff\xff"...)),
		"big encode":   build(5, append(slices.Clone(cls), "c_codecs\nencode\nX\x02\x00\x00\x00\xc4\x80X\x06\x00\x00\x00latin1\x86R."...)),
		"buffer":       build(5, append(slices.Clone(cls), "\x97."...)),
		"no stop":      build(5, append(slices.Clone(cls), "N"...)),
	}
	for name, rec := range cases {
		_, err := ScanRefs(rec, 0)
		var me *MalformedError
		if !errors.Is(err, ErrMalformed) || !errors.As(err, &me) {
			t.Errorf("%s: err = %v, want malformed", name, err)
			continue
		}
		if err := CheckRefs(rec); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: CheckRefs = %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// Decompression limit.
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("N"))
	zw.Write(make([]byte, 1<<20))
	zw.Write([]byte("."))
	zw.Close()
	rec := build(5, append(slices.Clone(cls), z.Bytes()...))
	if _, err := ScanRefs(rec, 1000); !errors.Is(err, ErrMalformed) {
		t.Errorf("limit: %v", err)
	}
	// A broken zlib stream falls back to the raw bytes (which here are not
	// a pickle either).
	rec = build(5, append(slices.Clone(cls), 0x78, 0x9c, 1, 2, 3))
	if _, err := ScanRefs(rec, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad zlib: %v", err)
	}
}

func readExpected(t testing.TB, path string) map[uint64]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return parseExpected(t, f)
}

func parseExpected(t testing.TB, r interface{ Read([]byte) (int, error) }) map[uint64]int64 {
	t.Helper()
	want := map[uint64]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var o uint64
		var v int64
		if _, err := fmt.Sscan(sc.Text(), &o, &v); err != nil {
			t.Fatal(err)
		}
		want[o] = v
	}
	return want
}

func equalIndex(t *testing.T, name string, got, want map[uint64]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", name, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: oid %d -> %d, want %d", name, k, got[k], v)
		}
	}
}

// DFS20 index pickles written by Python 3 (protocols 0–5, live) and Python 2
// (protocols 0 and 2, committed from Durus 4.2's cPickle).
func TestDecodeIndex(t *testing.T) {
	dir := t.TempDir()
	runPy(t, "testdata/gen_index.py", "write", dir)
	for _, d := range []string{dir, "testdata/index_py2"} {
		want := readExpected(t, filepath.Join(d, "expected.txt"))
		files, _ := filepath.Glob(filepath.Join(d, "index.p*"))
		if len(files) < 2 {
			t.Fatalf("%s: only %d index pickles", d, len(files))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeIndex(b)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			equalIndex(t, f, got, want)
		}
	}
	if _, err := DecodeIndex([]byte("\x80\x02]q\x00.")); !errors.Is(err, ErrMalformed) {
		t.Errorf("list index: %v", err)
	}
	if _, err := DecodeIndex([]byte("(dp1\nS'abc'\nI5\ns.")); !errors.Is(err, ErrMalformed) {
		t.Errorf("short key: %v", err)
	}
}

// The protocol-2 encoding of PROTOCOL.md §11.3, read back by Python's
// unpickler as Durus does.
func TestEncodeIndex(t *testing.T) {
	if got := EncodeIndex(nil); !bytes.Equal(got, []byte{0x80, 0x02, 0x7D, 0x2E}) {
		t.Fatalf("empty index = % X", got)
	}
	one := EncodeIndex(map[uint64]int64{255: 1 << 31})
	want := hexBytes(t, `80 02 7D 28 63 "_codecs\nencode\n" 58 09000000 00 00 00 00 00 00 00 C3 BF
		58 06000000 "latin1" 86 52 8A 05 00 00 00 80 00 75 2E`)
	if !bytes.Equal(one, want) {
		t.Fatalf("one entry:\n got % X\nwant % X", one, want)
	}
	want2 := readExpected(t, "testdata/index_py2/expected.txt")
	enc := EncodeIndex(want2)
	if n := bytes.Count(enc, []byte{'u'}); n < 3 {
		t.Logf("SETITEMS bytes: %d", n)
	}
	got, err := DecodeIndex(enc)
	if err != nil {
		t.Fatal(err)
	}
	equalIndex(t, "go round trip", got, want2)
	f := filepath.Join(t.TempDir(), "index.go")
	if err := os.WriteFile(f, enc, 0o644); err != nil {
		t.Fatal(err)
	}
	equalIndex(t, "python load", parseExpected(t, bytes.NewReader(runPy(t, "testdata/gen_index.py", "load", f))), want2)
	// Python 2 (Durus 4.2) as well, when an interpreter is named.
	if py2 := os.Getenv("DURUSBDB_PYTHON2"); py2 != "" {
		out, err := exec.Command(py2, "testdata/gen_index.py", "load", f).Output()
		if err != nil {
			t.Fatalf("python 2 load: %v", err)
		}
		equalIndex(t, "python 2 load", parseExpected(t, bytes.NewReader(out)), want2)
	}
	// Out-of-order adds are refused.
	e := NewIndexEncoder(&bytes.Buffer{})
	if err := e.Add(5, 14); err != nil {
		t.Fatal(err)
	}
	if err := e.Add(5, 14); !errors.Is(err, ErrIndexOrder) {
		t.Errorf("duplicate add: %v", err)
	}
}
