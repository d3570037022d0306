package leveldb

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// privateCopy makes a private copy of the LevelDB database in dir for a
// read-only open and returns its path. Table files (*.ldb, *.sst) never
// change once written, so they are hard-linked when possible; CURRENT,
// MANIFEST-* and *.log are copied. LOCK and LOG files are left out.
func privateCopy(dir string) (_ string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("leveldb: read-only open %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp("", "durusbdb-ro-*")
	if err != nil {
		return "", fmt.Errorf("leveldb: read-only open %s: private copy: %w", dir, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		src, dst := filepath.Join(dir, n), filepath.Join(tmp, n)
		var cerr error
		switch {
		case strings.HasSuffix(n, ".ldb") || strings.HasSuffix(n, ".sst"):
			if os.Link(src, dst) == nil {
				continue
			}
			cerr = copyFile(src, dst)
		case n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") || strings.HasSuffix(n, ".log"):
			cerr = copyFile(src, dst)
		}
		if cerr != nil {
			return "", fmt.Errorf("leveldb: read-only open %s: copy %s: %w", dir, n, cerr)
		}
	}
	return tmp, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// removeCopy deletes the private copy of a read-only open, if any.
func (s *Store) removeCopy() {
	if s.roCopy != "" {
		os.RemoveAll(s.roCopy)
		s.roCopy = ""
	}
}
