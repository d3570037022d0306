package recovery

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/progress"
	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/internal/stream"
	"github.com/durusbdb/durusbdb/kv"
)

// Options are shared by the operations of this package.
type Options struct {
	// Logger receives reports and progress lines; nil means slog.Default().
	Logger *slog.Logger
	// Progress is where progress bars are drawn (a terminal) or, if it is
	// not a terminal, progress is logged every few seconds; nil means
	// logging only.
	Progress io.Writer
	// CacheSize for environments this package opens; 0 = kv.DefaultCacheSize.
	CacheSize int64

	// hook, if set (tests), is called at named points of an operation.
	hook func(point string)
	// discardDamagedLog lets a Berkeley DB recovery cut the log at a
	// damaged record that intact records follow (RecoverOptions).
	discardDamagedLog bool
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o *Options) progress(what, unit string, total int64) *progress.Reporter {
	w := o.Progress
	if w == nil {
		w = io.Discard
	}
	return progress.New(w, o.logger(), what, unit, total)
}

// BackupOptions configure Backup.
type BackupOptions struct {
	Options
	// Stream writes one file (tar + snappy framing) instead of a directory.
	Stream bool
	// Keep, if > 0, is the retention of full backups: after the backup
	// is written and verified (VerifyBackup: a trial restore and check),
	// the oldest complete backups of the same database among the
	// siblings of out (entries of its parent directory) are removed so
	// that Keep remain, the new one included. See Retain.
	Keep int
	// Source, if set, is the database directory the manifest names
	// (which retention compares) when dir is a snapshot of it taken
	// elsewhere (a LevelDB server's copy of its open database).
	Source string
}

// BackupResult describes a finished backup.
type BackupResult struct {
	Out      string
	Manifest *Manifest
	// Bytes is the size of the output: the stream file, or the files of
	// the backup directory.
	Bytes    int64
	Duration time.Duration
	// Removed lists the older backups removed by retention (Keep).
	Removed []string
}

// Errors of Backup.
var (
	// ErrLevelDBInUse: a LevelDB directory cannot be backed up while a
	// server (or any process) has it open; it also matches kv.ErrInUse.
	ErrLevelDBInUse = fmt.Errorf("LevelDB allows one process per database, so a LevelDB database can be backed up only while no server has it open: stop the server, back up, start it again: %w", kv.ErrInUse)
	// ErrLogGap: a log file was created and removed during a hot backup
	// before it could be held open; the backup would be incomplete.
	ErrLogGap = errors.New("recovery: a log file was created and removed during the backup before it could be copied; run the backup again")
)

// Backup copies the database in dir to out: a new directory, or with
// opts.Stream a new file. It works while a server is serving the
// directory (Berkeley DB; see the package doc for how), or with no server
// (both backends). out must not exist (a directory may exist if empty).
// Everything is written into a staging directory beside out (named
// .durusbdb-backup-*, flocked while the backup runs) and moved or renamed
// into place when complete, so nothing appears at out before then; an
// error or a cancelled ctx removes the staging directory, and the staging
// directories that killed backups left beside out are removed first.
// With opts.Keep, older backups beside out are removed afterwards (Retain).
func Backup(ctx context.Context, dir, out string, opts BackupOptions) (*BackupResult, error) {
	start := time.Now()
	log := opts.logger()
	kind, err := backend.Detect(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
	}
	if kind == "" {
		return nil, fmt.Errorf("recovery: backup %s: the directory holds no database: %w", dir, kv.ErrNotDB)
	}
	absDir, _ := filepath.Abs(dir)
	absOut, _ := filepath.Abs(out)
	if dbdir.Contains(dir, out) {
		return nil, fmt.Errorf("recovery: backup %s: the output %s must not be inside the database directory", dir, out)
	}

	// Everything is written into a unique, flocked staging directory
	// beside out and moved into place when complete: an interrupted
	// backup leaves nothing at out, and its staging directory is removed
	// by the next backup (see staging.RemoveStale).
	var st *staging
	if opts.Stream {
		if _, err := os.Lstat(out); err == nil {
			return nil, fmt.Errorf("recovery: backup %s: output file %s already exists (refusing to overwrite)", dir, out)
		}
		st, err = newStaging(filepath.Dir(absOut), log)
	} else {
		st, err = stageBackupDir(out, absOut, log)
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
	}
	defer st.release()
	stage := st.dir
	if opts.hook != nil {
		opts.hook("staging created")
	}

	m := &Manifest{Backend: kind, Created: time.Now().UTC(), Source: absDir}
	if opts.Source != "" {
		if m.Source, err = filepath.Abs(opts.Source); err != nil {
			return nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
		}
	}
	if err := snapshot(ctx, dir, stage, m, opts.Options); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.Files, err = stagedFiles(dir, stage); err != nil {
		return nil, err
	}
	res := &BackupResult{Out: out, Manifest: m}
	if !opts.Stream {
		if err := placeBackup(dir, st, out, m); err != nil {
			return nil, err
		}
		res.Bytes = m.Size()
	} else {
		n, err := writeStream(ctx, stage, out, m, opts.Options)
		if err != nil {
			return nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
		}
		res.Bytes = n
	}
	res.Duration = time.Since(start)
	log.Info("recovery: backup written", "dir", dir, "out", out, "backend", kind, "mode", m.Mode,
		"files", len(m.Files), "bytes", res.Bytes, "duration", res.Duration)
	if opts.Keep > 0 {
		// Retention removes older backups only for one that restores: a
		// copy of a damaged database (Berkeley DB's backup copies a page
		// that fails its checksum as it is) must not rotate good backups
		// out.
		if _, err := VerifyBackup(ctx, out, VerifyOptions{Options: opts.Options}); err != nil {
			if !errors.Is(err, ErrBadBackup) && !errors.Is(err, kv.ErrNoSpace) && ctx.Err() == nil {
				err = fmt.Errorf("%w: %w", ErrBadBackup, err) // its trial restore failed
			}
			return res, fmt.Errorf("recovery: backup %s written to %s, but it does not verify, so no older backup was removed (--keep): %w", dir, out, err)
		}
		removed, err := Retain(filepath.Dir(absOut), absOut, opts.Keep, log)
		res.Removed = removed
		if err != nil {
			return res, fmt.Errorf("recovery: backup %s written to %s, but retention failed: %w", dir, out, err)
		}
	}
	return res, nil
}

// snapshot copies the database in dir (of backend m.Backend) into stage
// and records in m how (Mode) and, for Berkeley DB, which logs.
func snapshot(ctx context.Context, dir, stage string, m *Manifest, opts Options) error {
	switch m.Backend {
	case backend.BDB:
		mode, logs, err := snapshotBDB(ctx, dir, stage, opts)
		if err != nil {
			return err
		}
		m.Mode = mode
		if len(logs) > 0 {
			m.Extra = append(m.Extra, "logs "+logs[0]+" "+logs[len(logs)-1])
		}
	case backend.LevelDB:
		if err := snapshotLevelDB(ctx, dir, stage, opts); err != nil {
			return err
		}
		m.Mode = "offline"
	default:
		return fmt.Errorf("recovery: backup %s: unknown backend %q", dir, m.Backend)
	}
	return nil
}

// stagedFiles lists and hashes the files staged in stage for the
// manifest: data files first, then logs, each group by name.
func stagedFiles(dir, stage string) ([]ManifestFile, error) {
	ents, err := os.ReadDir(stage)
	if err != nil {
		return nil, fmt.Errorf("recovery: backup %s: read %s: %w", dir, stage, err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Slice(names, func(i, j int) bool {
		li, lj := isLogName(names[i]), isLogName(names[j])
		if li != lj {
			return !li
		}
		return names[i] < names[j]
	})
	var files []ManifestFile
	for _, n := range names {
		size, sum, err := hashFile(filepath.Join(stage, n))
		if err != nil {
			return nil, fmt.Errorf("recovery: backup %s: hash %s: %w", dir, n, err)
		}
		files = append(files, ManifestFile{Name: n, Size: size, SHA256: sum})
	}
	return files, nil
}

// placeBackup writes the manifest m into the staging directory st and
// moves it into place at out (a directory backup), all synced.
func placeBackup(dir string, st *staging, out string, m *Manifest) error {
	stage := st.dir
	if err := stagingdir.WriteFileSync(filepath.Join(stage, ManifestName), m.Marshal()); err != nil {
		return fmt.Errorf("recovery: backup %s: write manifest: %w", dir, err)
	}
	if err := moveIntoPlace(st, out); err != nil {
		return fmt.Errorf("recovery: backup %s: %w", dir, err)
	}
	return nil
}

// moveIntoPlace syncs the complete staging directory st and moves it to
// out (stagingdir.MoveInto: one rename when out does not exist; inside an
// existing out, where stagingFor made it, entry by entry with the
// manifest and a database's marker files last, after checking again that
// out holds nothing else).
func moveIntoPlace(st *staging, out string) error {
	if err := syncDir(st.dir); err != nil {
		return fmt.Errorf("sync %s: %w", st.dir, err)
	}
	if st.Inside(out) {
		if err := checkEmptyOut(out, st.dir); err != nil {
			return err
		}
	}
	if err := stagingdir.MoveInto(st.dir, out, copyRank); err != nil {
		return fmt.Errorf("move the copy into place at %s: %w", out, err)
	}
	if _, err := os.Stat(st.dir); errors.Is(err, fs.ErrNotExist) {
		st.keep() // renamed: the staging directory is out now
	}
	return nil
}

// checkEmptyOut checks that the backup directory out does not exist or is
// an empty directory (but for the staging directory own, if given), and
// that its parent exists.
func checkEmptyOut(out, own string) error {
	return checkEmptyDir(out, own, "a full backup goes into a new or empty directory (--incremental adds to an existing backup)")
}

// copyRank orders the files of a backup or a copy moved one by one into
// an existing directory (stagingdir.MoveInto): the manifest and a
// database's marker files last, so that an interrupted move leaves
// neither a backup nor a database there.
func copyRank(name string, _ fs.FileMode) int {
	if name == ManifestName || dbdir.Marker(name) {
		return 1
	}
	return 0
}

// writeStream writes the staged files as MANIFEST + files in a tar,
// snappy-framed, to out (via a file in the staging directory, renamed
// when complete and synced). It returns the size of the file.
func writeStream(ctx context.Context, stage, out string, m *Manifest, opts Options) (int64, error) {
	tmp := filepath.Join(stage, ".stream")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", tmp, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	zw := stream.NewWriter(f)
	tw := tar.NewWriter(zw)
	mt := m.Created
	man := m.Marshal()
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o640, Size: int64(len(man)), ModTime: mt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := tw.Write(man); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	prog := opts.progress("backup stream "+out, "bytes", m.Size())
	for _, mf := range m.Files {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: mf.Name, Mode: 0o640, Size: mf.Size, ModTime: mt, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return 0, fmt.Errorf("write %s: %w", tmp, err)
		}
		src, err := os.Open(filepath.Join(stage, mf.Name))
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(tw, io.LimitReader(src, mf.Size))
		src.Close()
		if err != nil {
			return 0, fmt.Errorf("write %s (member %s): %w", tmp, mf.Name, err)
		}
		if n != mf.Size {
			return 0, fmt.Errorf("staged file %s changed size (%d, manifest %d)", mf.Name, n, mf.Size)
		}
		prog.Add(n, 0)
	}
	prog.Done()
	if err := tw.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", tmp, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, fmt.Errorf("rename %s to %s: %w", tmp, out, err)
	}
	done = true
	if err := syncDir(filepath.Dir(out)); err != nil {
		return 0, fmt.Errorf("sync directory of %s: %w", out, err)
	}
	return st.Size(), nil
}

// checkEmptyTarget checks, without creating anything, that the restore
// target path is an empty directory (but for the staging directory own,
// if given) or does not exist while its parent does.
func checkEmptyTarget(path, own string) error {
	return checkEmptyDir(path, own, "restore writes only into an empty directory")
}

// checkEmptyDir checks, without creating anything, that path is an empty
// directory (but for own, the absolute path of a staging directory inside
// it, if given) or
// does not exist while its parent does; hint ends the error for a
// directory that is not empty.
func checkEmptyDir(path, own, hint string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		parent := filepath.Dir(path)
		if pi, err := os.Stat(parent); err != nil || !pi.IsDir() {
			return fmt.Errorf("parent directory %s of %s does not exist", parent, path)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory", path)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	if abs, err := filepath.Abs(path); err == nil && own != "" && filepath.Dir(own) == abs {
		ents = slices.DeleteFunc(ents, func(e os.DirEntry) bool { return e.Name() == filepath.Base(own) })
	}
	if len(ents) > 0 {
		return fmt.Errorf("directory %s is not empty (%d entries, e.g. %s); %s", path, len(ents), ents[0].Name(), hint)
	}
	return nil
}

func isLogName(n string) bool { return strings.HasPrefix(n, "log.") }

// copyFileSync copies r (from its start) to a new file dst and syncs it;
// it returns the bytes copied. Blocks of zeros are skipped with a seek, so
// libdb's pre-extended (sparse) log files stay sparse in the copy.
func copyFileSync(r io.Reader, dst string) (int64, error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	fail := func(err error) (int64, error) {
		f.Close()
		return 0, err
	}
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, rerr := io.ReadFull(r, buf)
		if m > 0 {
			if isZero(buf[:m]) {
				if _, err := f.Seek(int64(m), io.SeekCurrent); err != nil {
					return fail(err) // an *fs.PathError naming dst
				}
			} else if _, err := f.Write(buf[:m]); err != nil {
				return fail(err)
			}
			n += int64(m)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fail(fmt.Errorf("copy to %s: %w", dst, rerr))
		}
	}
	// A trailing hole needs the size set explicitly.
	if err := f.Truncate(n); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return n, f.Close()
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
