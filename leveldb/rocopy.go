package leveldb

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/durusbdb/durusbdb/internal/staging"
)

// Names of the private copies of read-only opens: in TMPDIR, or inside
// the database directory (a dotfile, which no tool takes for data).
const (
	roPrefixTmp    = "durusbdb-rocopy-" // not durusbdb-ro-: a running older release does not flock those
	roPrefixInside = staging.ReadOnlyPrefix
)

// privateCopy makes a private copy of the LevelDB database in dir for a
// read-only open and returns it, flocked while the store is open (so the
// next read-only open removes one a kill left behind). Table files
// (*.ldb, *.sst) never change once written, so they are hard-linked;
// CURRENT, MANIFEST-* and *.log are copied; LOCK and LOG files are left
// out. The copy goes where the tables can be hard-linked (copyParent):
// TMPDIR, else a dotfile directory inside dir (TMPDIR on another file
// system, often a RAM-backed tmpfs); only where neither can (dir on a
// read-only mount) are the tables copied into TMPDIR, with a warning
// naming the bytes.
func privateCopy(dir string, log *slog.Logger) (_ *staging.Dir, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("leveldb: read-only open %s: %w", dir, err)
	}
	probe := ""
	for _, e := range ents {
		if e.Type().IsRegular() && isTable(e.Name()) {
			probe = e.Name()
			break
		}
	}
	d, err := copyParent(dir, probe, log)
	if err != nil {
		return nil, fmt.Errorf("leveldb: read-only open %s: private copy: %w", dir, err)
	}
	defer func() {
		if err != nil {
			d.Release()
		}
	}()
	var copied int64
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		src, dst := filepath.Join(dir, n), filepath.Join(d.Path, n)
		var cerr error
		switch {
		case isTable(n):
			if os.Link(src, dst) == nil {
				continue
			}
			var size int64
			size, cerr = copyFile(src, dst)
			copied += size
		case n == "CURRENT" || strings.HasPrefix(n, "MANIFEST-") || strings.HasSuffix(n, ".log"):
			_, cerr = copyFile(src, dst)
		}
		if cerr != nil {
			return nil, fmt.Errorf("leveldb: read-only open %s: copy %s into its private copy %s: %w", dir, n, d.Path, cerr)
		}
	}
	if copied > 0 {
		log.Warn("leveldb: read-only open copied table files (no hard link possible: another file system, or a file not ours)", "dir", dir, "copy", d.Path, "bytes", copied)
	}
	return d, nil
}

// isTable reports whether name is a LevelDB table file (immutable).
func isTable(name string) bool {
	return strings.HasSuffix(name, ".ldb") || strings.HasSuffix(name, ".sst")
}

// copyParent makes the directory of a private copy of dir: in TMPDIR or,
// failing that, inside dir, the first on dir's file system where the
// table file probe (if any) can be hard-linked (a link cannot cross file
// systems or mounts); TMPDIR when neither is.
func copyParent(dir, probe string, log *slog.Logger) (*staging.Dir, error) {
	tmpdir := os.TempDir()
	for _, c := range []struct{ parent, prefix string }{{tmpdir, roPrefixTmp}, {dir, roPrefixInside}} {
		if !staging.SameDevice(dir, c.parent) {
			continue
		}
		d, err := staging.New(c.parent, c.prefix, "read-only open", 0o700, log)
		if err != nil {
			continue // dir on a read-only mount, or not ours to write
		}
		if probe == "" {
			return d, nil
		}
		dst := filepath.Join(d.Path, probe)
		if os.Link(filepath.Join(dir, probe), dst) == nil && os.Remove(dst) == nil {
			return d, nil
		}
		d.Release()
	}
	return staging.New(tmpdir, roPrefixTmp, "read-only open", 0o700, log)
}

// copyFile copies src to a new file dst and returns the bytes copied.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err != nil {
		out.Close()
		return n, err
	}
	return n, out.Close()
}

// removeCopy deletes the private copy of a read-only open, if any.
func (s *Store) removeCopy() {
	if s.roCopy != nil {
		s.roCopy.Release()
		s.roCopy = nil
	}
}
