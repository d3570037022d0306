package dbdir

import (
	"io/fs"
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
