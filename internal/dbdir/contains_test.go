package dbdir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestContains(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(root, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir, path string
		want      bool
	}{
		{db, db, true},
		{db, filepath.Join(db, "app.durus"), true},
		{db, filepath.Join(db, "new", "deeper", "x"), true}, // not existing yet
		{db, filepath.Join(root, "db", "..", "db", "x"), true},
		{db, filepath.Join(link, "x"), true}, // through a link to db
		{link, filepath.Join(db, "x"), true}, // db named through a link
		{db, filepath.Join(root, "db2", "x"), false},
		{db, filepath.Join(root, "dbx"), false},
		{db, root, false},
		{filepath.Join(db, "sub"), db, false},
	} {
		if got := Contains(c.dir, c.path); got != c.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", c.dir, c.path, got, c.want)
		}
	}
}
