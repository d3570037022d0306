package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/internal/dbdir"
)

func frames(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

func TestReadFrames(t *testing.T) {
	var got [][]byte
	in := frames([]byte("a"), nil, []byte("ccc"))
	if err := readFrames(bytes.NewReader(in), func(r []byte) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0]) != "a" || len(got[1]) != 0 || string(got[2]) != "ccc" {
		t.Fatalf("got %q", got)
	}
	for name, bad := range map[string][]byte{
		"truncated length": in[:len(in)-5][:2+len(frames([]byte("a")))],
		"truncated record": frames([]byte("abcdef"))[:7],
		"huge length":      {0xff, 0xff, 0xff, 0xff, 1},
	} {
		err := readFrames(bytes.NewReader(bad), func([]byte) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "stdin offset") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzReadFrames: any input ends in records or an error naming the offset;
// never a panic, never an allocation above the input's size plus the limit check.
func FuzzReadFrames(f *testing.F) {
	f.Add(frames([]byte("record")))
	f.Add([]byte{0, 0, 0, 9, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		total := 0
		err := readFrames(bytes.NewReader(in), func(r []byte) error { total += 4 + len(r); return nil })
		if err == nil && total != len(in) {
			t.Fatalf("clean end after %d of %d bytes", total, len(in))
		}
	})
}

// TestMoveIntoInterrupted: moving a new database into an existing empty
// directory, interrupted after any number of entries (a kill between two
// renames), never leaves a directory detected as a database; into a
// directory that does not exist, the database appears with one rename.
func TestMoveIntoInterrupted(t *testing.T) {
	layouts := map[string][]string{
		"bdb":     {"__db.001", "garbage.db", "log.0000000001", "meta.db", "objects.db", "refcounts.db"},
		"leveldb": {"000005.ldb", "CURRENT", "LOG", "MANIFEST-000004", "durusbdb.wal"},
	}
	errStop := errors.New("interrupted")
	for kind, files := range layouts {
		for stopAfter := 0; stopAfter < len(files); stopAfter++ {
			from, target := t.TempDir(), t.TempDir()
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(from, f), []byte(f), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			n := 0
			rename := func(a, b string) error {
				if n == stopAfter {
					return errStop
				}
				n++
				return os.Rename(a, b)
			}
			if err := moveIntoWith(from, target, rename); !errors.Is(err, errStop) {
				t.Fatalf("%s, stopped after %d: %v", kind, stopAfter, err)
			}
			if l, err := dbdir.Detect(target); err != nil || l.Kind == dbdir.BDB || l.Kind == dbdir.LevelDB {
				t.Errorf("%s, stopped after %d of %d renames: the directory is taken for a database (%v, %v)", kind, stopAfter, len(files), l.Files, err)
			}
		}
		from := t.TempDir()
		for _, f := range files {
			os.WriteFile(filepath.Join(from, f), []byte(f), 0o644)
		}
		target := filepath.Join(t.TempDir(), "new", "db")
		renames := 0
		if err := moveIntoWith(from, target, func(a, b string) error { renames++; return os.Rename(a, b) }); err != nil || renames != 1 {
			t.Fatalf("%s into a new directory: %d renames, %v", kind, renames, err)
		}
		if l, err := dbdir.Detect(target); err != nil || l.Kind == dbdir.Empty || l.Kind == dbdir.Foreign {
			t.Fatalf("%s into a new directory: %v %v", kind, l, err)
		}
	}
}
