package recovery

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/durusbdb/durusbdb/internal/dbdir"
	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/internal/stream"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Options
	// Until, if set, restores the database as it was at that time
	// (point-in-time recovery, second resolution): catastrophic recovery
	// rolls back every transaction committed after it. Berkeley DB only;
	// the logs of the backup (the full backup and its increments) must
	// reach back to a checkpoint before Until.
	Until time.Time
}

// ErrNoLogArchive: a LevelDB database keeps no archive of its log, so it
// has no incremental backups and no point-in-time restore.
var ErrNoLogArchive = errors.New("recovery: LevelDB keeps no log archive (it discards its write-ahead log at every compaction), so it has full backups only: no --incremental, no --until; take a full backup as often as needed (with --keep N for retention) and restore the newest one before the time wanted")

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Dir      string
	Manifest *Manifest
	// Recovery is the catastrophic recovery run on a Berkeley DB restore
	// (nil for LevelDB).
	Recovery *Report
	// Increments is the number of increments applied over the full backup.
	Increments int
	// Through is when the newest part of the backup (the full backup or
	// its last increment) was made.
	Through  time.Time
	Duration time.Duration
}

// Restore restores the backup in (a backup directory or a stream file) into
// dir, which must be empty or not exist (its parent must), and must
// neither be a backup directory in nor lie inside it, nor hold in (refused
// before anything is written). It first checks
// every file of the backup against the manifest (present exactly once,
// size, SHA-256) and writes nothing if any check fails (errors wrap
// ErrBadBackup). A backup directory with increments (BackupIncremental)
// is checked link by link, and the newest version of every file is
// written. Then it writes and syncs every file and, for Berkeley DB, runs
// catastrophic recovery, bounded by opts.Until if set, all in a staging
// directory beside dir that is moved into dir at the end: until then dir
// is left as it was, whatever stops the restore. The result opens
// normally.
func Restore(ctx context.Context, in, dir string, opts RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	fi, err := os.Stat(in)
	if err != nil {
		return nil, fmt.Errorf("recovery: restore from %s: %w", in, err)
	}
	// Before anything is written or removed (Settle removes what killed
	// runs left in dir): a restore into its own backup directory would
	// add files the manifest does not list, and every later restore or
	// verify of the backup would refuse it; a backup inside dir is not
	// left alone by the move into dir. (A stream file cannot contain dir.)
	if fi.IsDir() && dbdir.Contains(in, dir) {
		return nil, fmt.Errorf("recovery: restore from %s into %s: the target directory is the backup directory or inside it, and the restored files would break the backup; restore into a directory outside %s", in, dir, in)
	}
	if dbdir.Contains(dir, in) {
		return nil, fmt.Errorf("recovery: restore from %s into %s: the backup is inside the target directory; restore into a new or empty directory that does not hold the backup", in, dir)
	}
	if _, err := stagingdir.Settle(dir, opts.logger()); err != nil {
		return nil, fmt.Errorf("recovery: restore into %s: %w", dir, err)
	}
	if err := checkEmptyTarget(dir, ""); err != nil {
		return nil, fmt.Errorf("recovery: restore into %s: %w%s", dir, err, restoredHint(dir))
	}
	res := &RestoreResult{Dir: dir}
	m, write, err := verifyForRestore(ctx, in, fi.IsDir(), res, opts.Options)
	if err != nil {
		return nil, err
	}
	if !opts.Until.IsZero() && m.Backend != "bdb" {
		return nil, fmt.Errorf("recovery: restore %s --until %s: %w", in, opts.Until.Format(time.RFC3339), ErrNoLogArchive)
	}
	if m.Backend == "bdb" && !bdbCompiled() {
		return nil, fmt.Errorf("recovery: restore %s: the backup holds a Berkeley DB database; this durusbdb was built without -tags bdb", in)
	}
	// Everything verified: now, and only now, write, into a flocked
	// staging directory beside dir that is moved in once its files are
	// written and recovered. A restore killed or failed half way leaves
	// dir as it was (no files a server would refuse, or open before
	// catastrophic recovery made them consistent), and the next restore
	// or backup there removes the staging directory.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: restore into %s: %w", dir, err)
	}
	st, err := stagingFor(abs, opts.logger())
	if err != nil {
		return nil, fmt.Errorf("recovery: restore into %s: %w", dir, err)
	}
	defer st.release()
	// From here on a failure removes the staging directory: dir is as it
	// was, and the error says so.
	asItWas := func(err error) error { return fmt.Errorf("%w (%s left as it was)", err, dir) }
	// A directory inside it: the staging directory's own flock is not the
	// database's (bdb.LockDir flocks the directory it opens).
	work := filepath.Join(st.dir, "db")
	if err := os.Mkdir(work, 0o750); err != nil {
		return nil, asItWas(fmt.Errorf("recovery: restore into %s: %w", dir, err))
	}
	if err := write(work, dir); err != nil {
		return nil, asItWas(err)
	}
	if err := syncDir(work); err != nil {
		return nil, asItWas(fmt.Errorf("recovery: restore into %s: sync: %w", dir, err))
	}
	res.Manifest = m
	if m.Backend == "bdb" {
		if res.Recovery, err = recoverRestored(ctx, work, dir, res, opts); err != nil {
			return nil, asItWas(err)
		}
	}
	if err := placeRestored(work, dir, st.dir); err != nil {
		return nil, asItWas(fmt.Errorf("recovery: restore into %s: %w", dir, err))
	}
	res.Duration = time.Since(start)
	opts.logger().Info("recovery: restored", "from", in, "dir", dir, "backend", m.Backend,
		"files", len(m.Files), "bytes", m.Size(), "backup_created", m.Created, "duration", res.Duration)
	return res, nil
}

// restoredHint ends the refusal of a target dir that is not empty when
// dir holds a database, perhaps that of an earlier restore which
// completed (one interrupted in its final check, after the files were in
// place, leaves a whole database): it says how to go on. "" otherwise.
func restoredHint(dir string) string {
	l, err := dbdir.Detect(dir)
	if err != nil || (l.Kind != dbdir.BDB && l.Kind != dbdir.LevelDB) {
		return ""
	}
	return fmt.Sprintf("; %s holds a database: if it is a restore that completed (one interrupted in its final check is complete), check it with `durusbdb check --dir %s` and use it, or remove it (rm -rf %s) to restore again", dir, dir, dir)
}

// verifyForRestore checks every file of the backup in (a backup directory
// with its increments when isDir, else a stream file) and returns its
// manifest and the function that writes the verified files into the
// directory work (its progress names dir, where they are going); it sets
// res.Increments and res.Through.
func verifyForRestore(ctx context.Context, in string, isDir bool, res *RestoreResult, opts Options) (*Manifest, func(work, dir string) error, error) {
	if isDir {
		links, err := verifyChain(ctx, in, opts)
		if err != nil {
			return nil, nil, err
		}
		files := latestFiles(links)
		res.Increments = len(links) - 1
		res.Through = links[len(links)-1].m.Created
		write := func(work, dir string) error { return extractFiles(ctx, in, work, dir, files, opts) }
		return chainManifest(links, files), write, nil
	}
	m, err := walkStream(ctx, in, "", "", nil, opts)
	if err != nil {
		return nil, nil, err
	}
	write := func(work, dir string) error {
		_, err := walkStream(ctx, in, work, dir, m, opts)
		return err
	}
	res.Through = m.Created
	return m, write, nil
}

// placeRestored moves the restored database in the directory work (in the
// staging directory own) to dir (stagingdir.MoveInto): one rename when dir
// does not exist; into an existing empty dir (own is then inside it) entry
// by entry, meta.db last, after checking again that it is empty (a rename
// would replace a file put there while the restore ran).
func placeRestored(work, dir, own string) error {
	if err := checkEmptyTarget(dir, own); err != nil {
		return err
	}
	return stagingdir.MoveInto(work, dir, dbdir.MoveRank)
}

// recoverRestored runs catastrophic recovery on the Berkeley DB files
// restored into dir, bounded by opts.Until if set, and logs its report.
func recoverRestored(ctx context.Context, work, dir string, res *RestoreResult, opts RestoreOptions) (*Report, error) {
	var r *Report
	var err error
	// A hot backup copies the last log file while the server appends to
	// it: the copy can end in a record cut anywhere, or in pages of one
	// write copied before and after it, which can read as damage that
	// intact records follow. Everything the backup holds for certain was
	// flushed before that copy began (and the manifest's checksums
	// vouch for the bytes), so recovery may end the log there.
	o := opts.Options
	o.discardDamagedLog = true
	if opts.Until.IsZero() {
		r, err = recoverBDB(ctx, work, true, false, o)
	} else {
		r, err = recoverBDBUntil(ctx, work, true, false, opts.Until, o)
	}
	if err != nil {
		// dir stays as it was (the staging directory goes): another try
		// (a later --until) finds it empty.
		if !opts.Until.IsZero() {
			return nil, fmt.Errorf("recovery: restore into %s: catastrophic recovery until %s (the backup was made %s, its newest part %s; the time must come after a checkpoint in the backup's log files: every increment writes one, a server one every --checkpoint-interval): %w",
				dir, opts.Until.Format(time.RFC3339), res.Manifest.Created.Format(time.RFC3339), res.Through.Format(time.RFC3339), err)
		}
		return nil, fmt.Errorf("recovery: restore into %s: catastrophic recovery: %w", dir, err)
	}
	r.Dir = dir // where the recovered files are going, not the staging directory
	r.Log(opts.logger())
	return r, nil
}

// extractFiles copies the verified files of a backup directory (the
// newest version of each, see latestFiles) into dir, checking each file's
// sum again while copying (the backup may change meanwhile). Its progress
// names label, the directory the files are for.
func extractFiles(ctx context.Context, in, dir, label string, files []chainFile, opts Options) error {
	var total int64
	for _, f := range files {
		total += f.Size
	}
	prog := opts.progress("restore "+label, "bytes", total)
	defer prog.Done()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := os.Open(filepath.Join(f.dir, f.Name))
		if err != nil {
			return fmt.Errorf("recovery: restore from %s: %w", in, err)
		}
		err = copyChecked(src, filepath.Join(dir, f.Name), f.ManifestFile)
		src.Close()
		if err != nil {
			return fmt.Errorf("recovery: restore from %s: %w", in, err)
		}
		prog.Add(f.Size, 0)
	}
	return nil
}

// copyChecked writes r to the new file dst, failing (with ErrBadBackup)
// if what it wrote does not match f.
func copyChecked(r io.Reader, dst string, f ManifestFile) error {
	h := sha256.New()
	n, err := copyFileSync(io.TeeReader(io.LimitReader(r, f.Size+1), h), dst)
	if err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("%s changed since it was verified (size %d, SHA-256 %s; manifest %d, %s): %w", f.Name, n, sum, f.Size, f.SHA256, ErrBadBackup)
	}
	return nil
}

// walkStream reads a backup stream. With dir == "" it verifies it and
// returns its manifest; otherwise it writes every file into dir, checking
// it against want (the manifest of the verifying pass) again, with a
// progress that names label (the directory the files are for).
func walkStream(ctx context.Context, in, dir, label string, want *Manifest, opts Options) (*Manifest, error) {
	f, err := os.Open(in)
	if err != nil {
		return nil, fmt.Errorf("recovery: restore from %s: %w", in, err)
	}
	defer f.Close()
	var total int64
	if st, err := f.Stat(); err == nil {
		total = st.Size()
	}
	what := "verify " + in
	if dir != "" {
		what = "restore " + label
	}
	prog := opts.progress(what, "bytes", total)
	defer prog.Done()
	cr := &countReader{r: f, prog: prog}
	sr := stream.NewReader(cr)
	tr := tar.NewReader(sr)
	m, err := readStreamManifest(tr, in, want)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badStream(in, "reading the archive after %d files: %v", len(seen), err)
		}
		if err := streamMember(tr, hdr, in, dir, m, seen); err != nil {
			return nil, err
		}
	}
	if err := checkStreamEnd(sr, in, m, seen); err != nil {
		return nil, err
	}
	return m, nil
}

// badStream is the error for a backup stream in that fails a check
// (ErrBadBackup).
func badStream(in, format string, args ...any) error {
	return fmt.Errorf("recovery: restore from %s: %s: %w", in, fmt.Sprintf(format, args...), ErrBadBackup)
}

// readStreamManifest reads and parses the manifest, the first member of the
// stream in, which must equal want unless want is nil.
func readStreamManifest(tr *tar.Reader, in string, want *Manifest) (*Manifest, error) {
	hdr, err := tr.Next()
	if err != nil {
		return nil, badStream(in, "reading the first member: %v", err)
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg || hdr.Size > 16<<20 {
		return nil, badStream(in, "first member is %q, not %s", hdr.Name, ManifestName)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, badStream(in, "reading %s: %v", ManifestName, err)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("recovery: restore from %s: %w", in, err)
	}
	if want != nil && !bytes.Equal(m.Marshal(), want.Marshal()) {
		return nil, badStream(in, "the manifest changed since it was verified")
	}
	return m, nil
}

// streamMember checks the member hdr of the stream in against the manifest
// m and the names seen so far (adding it), then checks its sum (dir == "")
// or writes it into dir.
func streamMember(tr *tar.Reader, hdr *tar.Header, in, dir string, m *Manifest, seen map[string]bool) error {
	mf := m.File(hdr.Name)
	switch {
	case hdr.Typeflag != tar.TypeReg:
		return badStream(in, "member %q is not a regular file", hdr.Name)
	case mf == nil:
		return badStream(in, "member %q is not listed in the manifest", hdr.Name)
	case seen[hdr.Name]:
		return badStream(in, "member %q appears twice", hdr.Name)
	case hdr.Size != mf.Size:
		return badStream(in, "member %s has %d bytes, the manifest says %d", hdr.Name, hdr.Size, mf.Size)
	}
	seen[hdr.Name] = true
	if dir == "" {
		h := sha256.New()
		if _, err := io.Copy(h, tr); err != nil {
			return badStream(in, "reading member %s: %v", hdr.Name, err)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != mf.SHA256 {
			return badStream(in, "member %s has SHA-256 %s, the manifest says %s", hdr.Name, sum, mf.SHA256)
		}
		return nil
	}
	if err := copyChecked(tr, filepath.Join(dir, hdr.Name), *mf); err != nil {
		if errors.Is(err, ErrBadBackup) {
			return fmt.Errorf("recovery: restore from %s: %w", in, err)
		}
		return fmt.Errorf("recovery: restore from %s into %s: %w", in, dir, err)
	}
	return nil
}

// checkStreamEnd checks that every file of m was seen, then reads the
// stream sr to its end marker, which proves it complete; only tar padding
// (zeros) may follow the archive.
func checkStreamEnd(sr io.Reader, in string, m *Manifest, seen map[string]bool) error {
	for _, mf := range m.Files {
		if !seen[mf.Name] {
			return badStream(in, "file %s of the manifest is missing from the archive", mf.Name)
		}
	}
	rest, err := io.ReadAll(sr)
	if err != nil {
		return badStream(in, "the compressed stream does not end properly: %v", err)
	}
	if len(bytes.Trim(rest, "\x00")) > 0 {
		return badStream(in, "%d bytes of data after the end of the archive", len(rest))
	}
	return nil
}

// countReader reports bytes read to a progress reporter.
type countReader struct {
	r    io.Reader
	prog interface{ Add(n, extra int64) }
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.prog.Add(int64(n), 0)
	return n, err
}
