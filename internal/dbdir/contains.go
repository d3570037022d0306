package dbdir

import (
	"path/filepath"
	"strings"
)

// Contains reports whether path is dir itself or lies inside it, after
// making both absolute and resolving the symbolic links of the longest
// part of each that exists (so "db/../db/x", or a link into db, is inside
// db). Tools refuse such paths where writing or removing one would harm
// the other: a backup or export written into the database, an import whose
// source the swap of the database directory would remove, a restore into
// its own backup.
func Contains(dir, path string) bool {
	d, p := resolve(dir), resolve(path)
	return d != "" && p != "" && (p == d || strings.HasPrefix(p, d+string(filepath.Separator)))
}

// resolve returns path absolute and clean, with the symbolic links of its
// longest existing prefix resolved, or "" if it cannot be made absolute.
func resolve(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
