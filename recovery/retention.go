package recovery

import (
	"archive/tar"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/internal/stream"
)

// Retain keeps the newest keep complete backups in the directory parent
// that are of the same database as the backup just (a path in parent,
// never removed), and removes the older ones. A complete backup is a
// directory whose MANIFEST parses, or a stream file whose first member is
// a MANIFEST that parses; the same database means the same source
// directory in the manifest. Anything else in parent (other files,
// directories without a manifest, backups of other databases, staging
// directories) is never touched. Backups are ordered by the time of
// their manifest (the full backup's). It returns the paths removed.
func Retain(parent, just string, keep int, log *slog.Logger) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("recovery: retention: keep %d: must be at least 1", keep)
	}
	jm, err := readAnyManifest(just)
	if err != nil {
		return nil, fmt.Errorf("recovery: retention: the new backup %s: %w", just, err)
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil, fmt.Errorf("recovery: retention: %w", err)
	}
	type cand struct {
		path    string
		created time.Time
	}
	var cands []cand
	for _, e := range ents {
		p := filepath.Join(parent, e.Name())
		if strings.HasPrefix(e.Name(), ".") || p == just {
			continue
		}
		m, err := readAnyManifest(p)
		if err != nil || m.Source != jm.Source || m.Backend != jm.Backend {
			continue
		}
		cands = append(cands, cand{p, m.Created})
	}
	// Newest first; the new backup counts as one of the keep.
	sort.Slice(cands, func(i, j int) bool { return cands[i].created.After(cands[j].created) })
	var removed []string
	for i, c := range cands {
		if i < keep-1 {
			continue
		}
		if err := os.RemoveAll(c.path); err != nil {
			return removed, fmt.Errorf("recovery: retention: remove %s: %w", c.path, err)
		}
		log.Info("recovery: retention removed an old backup", "path", c.path, "created", c.created, "keep", keep)
		removed = append(removed, c.path)
	}
	if len(removed) > 0 {
		if err := syncDir(parent); err != nil {
			return removed, fmt.Errorf("recovery: retention: sync %s: %w", parent, err)
		}
	}
	return removed, nil
}

// readAnyManifest reads the manifest of a backup directory or stream
// file without verifying anything else.
func readAnyManifest(path string) (*Manifest, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		data, err := os.ReadFile(filepath.Join(path, ManifestName))
		if err != nil {
			return nil, err
		}
		return ParseManifest(data)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a backup", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(stream.NewReader(f))
	hdr, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("%s is not a backup stream: %w", path, err)
	}
	if hdr.Name != ManifestName || hdr.Size > 16<<20 {
		return nil, fmt.Errorf("%s is not a backup stream", path)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, err
	}
	return ParseManifest(data)
}
