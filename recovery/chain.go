package recovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// IncrementsDir is the subdirectory of a backup directory that holds its
// increments: increments/000001, increments/000002, ..., each with its own
// MANIFEST and the log files it added (see BackupIncremental).
const IncrementsDir = "increments"

// chainLink is one manifest of a backup directory: the full backup's or
// an increment's.
type chainLink struct {
	dir string // the directory holding the manifest and its files
	raw []byte // the manifest text
	m   *Manifest
}

// incrementName is the directory name of increment k.
func incrementName(k int) string { return fmt.Sprintf("%06d", k) }

// readChain reads the manifests of the backup directory in: the full
// backup's, then its increments' in order, checking that each increment
// follows the one before (number and previous checksum). It reads no
// other file. Errors wrap ErrBadBackup.
func readChain(in string) ([]chainLink, error) {
	bad := func(format string, args ...any) ([]chainLink, error) {
		return nil, fmt.Errorf("recovery: backup %s: %s: %w", in, fmt.Sprintf(format, args...), ErrBadBackup)
	}
	raw, err := os.ReadFile(filepath.Join(in, ManifestName))
	if err != nil {
		return bad("read manifest: %v", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("recovery: backup %s: %w", in, err)
	}
	if m.Increment != 0 {
		return bad("%s is the manifest of increment %d, not of a full backup", filepath.Join(in, ManifestName), m.Increment)
	}
	links := []chainLink{{dir: in, raw: raw, m: m}}
	incDir := filepath.Join(in, IncrementsDir)
	ents, err := os.ReadDir(incDir)
	if errors.Is(err, fs.ErrNotExist) {
		return links, nil
	}
	if err != nil {
		return bad("read %s: %v", incDir, err)
	}
	var nums []int
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stagePrefix) {
			continue // an increment being written, or left by a killed one
		}
		k, err := strconv.Atoi(e.Name())
		if err != nil || k <= 0 || e.Name() != incrementName(k) || !e.IsDir() {
			return bad("%s does not belong in %s", e.Name(), incDir)
		}
		nums = append(nums, k)
	}
	sort.Ints(nums)
	for i, k := range nums {
		if k != i+1 {
			return bad("increment %d is missing from %s (found %d)", i+1, incDir, k)
		}
		d := filepath.Join(incDir, incrementName(k))
		raw, err := os.ReadFile(filepath.Join(d, ManifestName))
		if err != nil {
			return bad("read manifest of increment %d: %v", k, err)
		}
		m, err := ParseManifest(raw)
		if err != nil {
			return nil, fmt.Errorf("recovery: backup %s: increment %s: %w", in, d, err)
		}
		prev := links[len(links)-1]
		switch {
		case m.Increment != k:
			return bad("%s says increment %d, its directory says %d", filepath.Join(d, ManifestName), m.Increment, k)
		case m.Previous != manifestSum(prev.raw):
			return bad("%s does not follow %s: it records the previous manifest's SHA-256 as %s, the file has %s",
				filepath.Join(d, ManifestName), filepath.Join(prev.dir, ManifestName), m.Previous, manifestSum(prev.raw))
		case m.Backend != links[0].m.Backend:
			return bad("increment %d is of backend %s, the full backup of %s", k, m.Backend, links[0].m.Backend)
		}
		links = append(links, chainLink{dir: d, raw: raw, m: m})
	}
	return links, nil
}

// verifyChain reads the chain of the backup directory in and checks every
// file of every manifest (size and SHA-256), and that each directory of
// the chain holds nothing its manifest does not list. An error names the
// bad file and wraps ErrBadBackup.
func verifyChain(ctx context.Context, in string, opts Options) ([]chainLink, error) {
	links, err := readChain(in)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, l := range links {
		total += l.m.Size()
	}
	prog := opts.progress("verify "+in, "bytes", total)
	defer prog.Done()
	for i, l := range links {
		ents, err := os.ReadDir(l.dir)
		if err != nil {
			return nil, fmt.Errorf("recovery: backup %s: %v: %w", in, err, ErrBadBackup)
		}
		for _, e := range ents {
			if e.Name() == ManifestName || (i == 0 && e.Name() == IncrementsDir && e.IsDir()) {
				continue
			}
			if l.m.File(e.Name()) == nil {
				return nil, fmt.Errorf("recovery: backup %s: %s is not listed in the manifest: %w", in, filepath.Join(l.dir, e.Name()), ErrBadBackup)
			}
		}
		for _, f := range l.m.Files {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			p := filepath.Join(l.dir, f.Name)
			size, sum, err := hashFile(p)
			if err != nil {
				return nil, fmt.Errorf("recovery: backup %s: %v: %w", in, err, ErrBadBackup)
			}
			if size != f.Size || sum != f.SHA256 {
				return nil, fmt.Errorf("recovery: backup %s: %s has size %d and SHA-256 %s, manifest says %d and %s: %w",
					in, p, size, sum, f.Size, f.SHA256, ErrBadBackup)
			}
			prog.Add(size, 0)
		}
	}
	return links, nil
}

// chainFile is the newest version of one file of a chain.
type chainFile struct {
	dir string // where it is
	ManifestFile
}

// latestFiles returns, for each file name of the chain, its version in the
// last manifest listing it (an increment holds a longer copy of the log
// file the previous backup ended with): data files first, then log files,
// each group by name.
func latestFiles(links []chainLink) []chainFile {
	by := map[string]chainFile{}
	for _, l := range links {
		for _, f := range l.m.Files {
			by[f.Name] = chainFile{dir: l.dir, ManifestFile: f}
		}
	}
	out := make([]chainFile, 0, len(by))
	for _, f := range by {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		li, lj := isLogName(out[i].Name), isLogName(out[j].Name)
		if li != lj {
			return !li
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// chainManifest is the manifest describing what restoring the chain
// writes: the full backup's header with the newest version of every file.
func chainManifest(links []chainLink, files []chainFile) *Manifest {
	m := *links[0].m
	m.Files = make([]ManifestFile, len(files))
	for i, f := range files {
		m.Files[i] = f.ManifestFile
	}
	return &m
}
