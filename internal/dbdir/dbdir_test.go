package dbdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestIgnorable(t *testing.T) {
	for _, c := range []struct {
		name string
		mode fs.FileMode
		want bool
	}{
		{".hidden", 0, true},
		{"anything.sock", fs.ModeSocket, true},
		{"durusbdb.lock", 0, true},
		{"server.log.txt", 0, true},
		{"__db.001", 0, true},
		{"__db.register", 0, true},
		{"log.0000000001", 0, true},
		{"DB_CONFIG", 0, true},
		{"log.1", 0, false},
		{"log.000000000x", 0, false},
		{"meta.db", 0, false},
		{"objects.db", 0, false},
		{"CURRENT", 0, false},
		{"000005.ldb", 0, false},
		{"Data.fs", 0, false},
	} {
		if got := Ignorable(c.name, c.mode); got != c.want {
			t.Errorf("Ignorable(%q, %v) = %v, want %v", c.name, c.mode, got, c.want)
		}
	}
	if LogNumber("log.0000000042") != 42 || LogNumber("log.42") != 0 {
		t.Error("LogNumber")
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		files []string
		want  Kind
	}{
		{nil, Empty},
		{[]string{"x.log.txt", ".hidden", "durusbdb.lock", "__db.001", "log.0000000001", "DB_CONFIG"}, Empty},
		{[]string{"meta.db", "objects.db"}, BDB},
		{[]string{"meta.db", "CURRENT"}, BDB},
		{[]string{"CURRENT", "MANIFEST-000002", "x.log.txt"}, LevelDB},
		{[]string{"objects.db"}, Foreign},
		{[]string{"Data.fs", "x.log.txt"}, Foreign},
	} {
		dir := t.TempDir()
		for _, f := range c.files {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Detect(dir)
		if err != nil || l.Kind != c.want {
			t.Errorf("%v: %+v %v, want kind %d", c.files, l, err, c.want)
		}
		if c.want == Foreign && (len(l.Files) == 0 || strings.Contains(l.List(), "x.log.txt")) {
			t.Errorf("%v: files %q should list the foreign files only", c.files, l.List())
		}
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Detect(file); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("a file: %v, want ENOTDIR", err)
	}
	if _, err := Detect(filepath.Join(file, "missing")); err == nil {
		t.Error("a missing path: no error")
	}
	many := Layout{Files: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}}
	if got := many.List(); !strings.HasSuffix(got, "j, …") || len(many.Files) != 12 {
		t.Errorf("List of 12: %q (files now %v)", got, many.Files)
	}
}
