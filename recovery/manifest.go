package recovery

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ManifestName is the name of the manifest in a backup directory and the
// first member of a backup stream.
const ManifestName = "MANIFEST"

// manifestMagic is the first line of every manifest, with its version.
const manifestMagic = "durusbdb-backup 1"

// ErrBadBackup marks a backup that fails verification: a missing, extra,
// truncated or altered file, or a malformed manifest or stream. Restore
// writes nothing when it sees one.
var ErrBadBackup = errors.New("recovery: backup does not verify")

// Manifest lists every file of a backup with its size and SHA-256.
//
// Text format, one item per line:
//
//	durusbdb-backup 1
//	backend bdb
//	created 2026-11-25T14:00:00Z
//	source /var/lib/durusbdb
//	mode hot
//	increment 2
//	previous <sha256 hex of the previous manifest>
//	logs log.0000000003 log.0000000004
//	file <sha256 hex> <size> <name>
//	...
//	end <number of files>
//
// Header lines other than file, end, increment and previous are
// informational; unknown ones are kept in Extra. Names are plain file
// names (no directories). The increment and previous lines appear only in
// the manifest of an increment (see BackupIncremental): its number in the
// chain (1, 2, ...) and the SHA-256 of the manifest it follows (the full
// backup's for increment 1), which links the chain.
type Manifest struct {
	Backend string
	Created time.Time
	Source  string
	// Mode is "hot" (joined a running server's environment) or "offline"
	// (the backup held the directory lock).
	Mode string
	// Increment is the number of an increment in its chain (1, 2, ...);
	// 0 for a full backup.
	Increment int
	// Previous is the SHA-256 (hex) of the manifest an increment follows;
	// "" for a full backup.
	Previous string
	Files    []ManifestFile
	// Extra holds header lines this version does not interpret.
	Extra []string
}

// ManifestFile is one file of a backup.
type ManifestFile struct {
	Name   string
	Size   int64
	SHA256 string // lowercase hex
}

// Size returns the total size of the files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// File returns the entry named name, or nil.
func (m *Manifest) File(name string) *ManifestFile {
	for i := range m.Files {
		if m.Files[i].Name == name {
			return &m.Files[i]
		}
	}
	return nil
}

// Marshal returns the manifest text.
func (m *Manifest) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintln(&b, manifestMagic)
	fmt.Fprintf(&b, "backend %s\n", m.Backend)
	fmt.Fprintf(&b, "created %s\n", m.Created.UTC().Format(time.RFC3339Nano))
	if m.Source != "" {
		fmt.Fprintf(&b, "source %s\n", m.Source)
	}
	if m.Mode != "" {
		fmt.Fprintf(&b, "mode %s\n", m.Mode)
	}
	if m.Increment > 0 {
		fmt.Fprintf(&b, "increment %d\n", m.Increment)
		fmt.Fprintf(&b, "previous %s\n", m.Previous)
	}
	for _, x := range m.Extra {
		fmt.Fprintln(&b, x)
	}
	for _, f := range m.Files {
		fmt.Fprintf(&b, "file %s %d %s\n", f.SHA256, f.Size, f.Name)
	}
	fmt.Fprintf(&b, "end %d\n", len(m.Files))
	return b.Bytes()
}

// ParseManifest parses manifest text; errors wrap ErrBadBackup.
func ParseManifest(data []byte) (*Manifest, error) {
	m := &Manifest{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n, ended := 0, false
	seen := map[string]bool{}
	for sc.Scan() {
		n++
		line := sc.Text()
		if ended {
			return nil, badManifestLine(n, "text after the end line")
		}
		if n == 1 {
			if line != manifestMagic {
				return nil, badManifestLine(n, "not a durusbdb backup manifest (first line %q, want %q)", line, manifestMagic)
			}
			continue
		}
		var err error
		if ended, err = m.parseLine(n, line, seen); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("recovery: read %s: %v: %w", ManifestName, err, ErrBadBackup)
	}
	if !ended {
		return nil, fmt.Errorf("recovery: %s has no end line (truncated): %w", ManifestName, ErrBadBackup)
	}
	if err := m.checkParsed(); err != nil {
		return nil, err
	}
	return m, nil
}

// badManifestLine is the error for line n of a manifest (ErrBadBackup).
func badManifestLine(n int, format string, args ...any) error {
	return fmt.Errorf("recovery: %s line %d: %s: %w", ManifestName, n, fmt.Sprintf(format, args...), ErrBadBackup)
}

// parseLine parses line n (after the first) of a manifest into m; seen
// holds the file names listed so far. It reports whether line is the end
// line.
func (m *Manifest) parseLine(n int, line string, seen map[string]bool) (end bool, err error) {
	key, rest, _ := strings.Cut(line, " ")
	switch key {
	case "backend":
		m.Backend = rest
	case "created":
		t, err := time.Parse(time.RFC3339Nano, rest)
		if err != nil {
			return false, badManifestLine(n, "bad time %q", rest)
		}
		m.Created = t
	case "source":
		m.Source = rest
	case "mode":
		m.Mode = rest
	case "increment":
		k, err := strconv.Atoi(rest)
		if err != nil || k <= 0 {
			return false, badManifestLine(n, "bad increment number %q", rest)
		}
		m.Increment = k
	case "previous":
		sum, err := hex.DecodeString(rest)
		if err != nil || len(sum) != sha256.Size {
			return false, badManifestLine(n, "bad previous manifest SHA-256 %q", rest)
		}
		m.Previous = strings.ToLower(rest)
	case "file":
		f, err := parseFileLine(n, rest, seen)
		if err != nil {
			return false, err
		}
		m.Files = append(m.Files, f)
	case "end":
		c, err := strconv.Atoi(rest)
		if err != nil || c != len(m.Files) {
			return false, badManifestLine(n, "end line says %q files, manifest lists %d", rest, len(m.Files))
		}
		return true, nil
	default:
		m.Extra = append(m.Extra, line)
	}
	return false, nil
}

// parseFileLine parses rest, "SHA256 SIZE NAME", of the file line n of a
// manifest, refusing a name in seen and adding it there.
func parseFileLine(n int, rest string, seen map[string]bool) (ManifestFile, error) {
	parts := strings.SplitN(rest, " ", 3)
	if len(parts) != 3 {
		return ManifestFile{}, badManifestLine(n, "want: file SHA256 SIZE NAME")
	}
	sum, err := hex.DecodeString(parts[0])
	if err != nil || len(sum) != sha256.Size {
		return ManifestFile{}, badManifestLine(n, "bad SHA-256 %q", parts[0])
	}
	size, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || size < 0 {
		return ManifestFile{}, badManifestLine(n, "bad size %q", parts[1])
	}
	name := parts[2]
	if !validName(name) {
		return ManifestFile{}, badManifestLine(n, "bad file name %q", name)
	}
	if seen[name] {
		return ManifestFile{}, badManifestLine(n, "file %s listed twice", name)
	}
	seen[name] = true
	return ManifestFile{Name: name, Size: size, SHA256: strings.ToLower(parts[0])}, nil
}

// checkParsed checks what a whole manifest must hold: a known backend, at
// least one file, and an increment line exactly when a previous line.
func (m *Manifest) checkParsed() error {
	if m.Backend != "bdb" && m.Backend != "leveldb" {
		return fmt.Errorf("recovery: %s names backend %q (want bdb or leveldb): %w", ManifestName, m.Backend, ErrBadBackup)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("recovery: %s lists no files: %w", ManifestName, ErrBadBackup)
	}
	if (m.Increment > 0) != (m.Previous != "") {
		return fmt.Errorf("recovery: %s has an increment line without a previous line or the reverse: %w", ManifestName, ErrBadBackup)
	}
	return nil
}

// LogRange returns the first and last log file names of the "logs" line
// ("", "" if there is none).
func (m *Manifest) LogRange() (first, last string) {
	for _, x := range m.Extra {
		if rest, ok := strings.CutPrefix(x, "logs "); ok {
			first, last, _ = strings.Cut(rest, " ")
			return first, last
		}
	}
	return "", ""
}

// manifestSum returns the SHA-256 (hex) of manifest text, as an
// increment's previous line records it.
func manifestSum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// validName accepts plain file names only: no separators, no "." or "..",
// not the manifest itself.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && name != ManifestName &&
		!strings.ContainsAny(name, "/\\\x00\n") && filepath.Base(name) == name
}

// hashFile returns the size and SHA-256 (hex) of the file at path.
func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
