package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

// ErrFullBackupNeeded: an increment cannot be added to a backup because
// a log file written since the backup's last part is gone from the
// database directory (the server removed it after a checkpoint: run it
// with --keep-logs), or the database's log does not continue the
// backup's (another database, or a log reset by a restore or an
// upgrade). Take a full backup.
var ErrFullBackupNeeded = errors.New("recovery: a full backup is needed")

// tailSlack is how much of the end of the last log file copied by the
// previous backup part is not compared with the source's: it may have
// been copied while the server was writing it.
const tailSlack = 64 << 10

// BackupIncremental adds an increment to the backup directory out (made
// by Backup, maybe with increments already): the Berkeley DB log files of
// dir written since the backup's last part, that is the last log file
// that part copied (now longer) and every later one. The increment goes
// into out/increments/NNNNNN with its own manifest, which records the
// SHA-256 of every file it adds and of the manifest before it. Nothing
// already in out changes, and an interrupted increment leaves only a
// staging directory that the next backup removes. Like Backup it works
// alongside a running server (joining its environment) or offline.
//
// The log files since the last part must all still be in dir: a server
// removes log files after its checkpoints unless it runs with
// --keep-logs. If one is gone, or the log of dir does not continue the
// backup's, the error wraps ErrFullBackupNeeded. LevelDB has no log
// archive: the error wraps ErrNoLogArchive.
func BackupIncremental(ctx context.Context, dir, out string, opts BackupOptions) (*BackupResult, error) {
	start := time.Now()
	log := opts.logger()
	kind, err := checkIncrementable(dir, out, opts.Stream)
	if err != nil {
		return nil, err
	}
	links, err := readChain(out)
	if err != nil {
		return nil, fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	if b := links[0].m.Backend; b != backend.BDB {
		return nil, fmt.Errorf("recovery: incremental backup of %s: %s is a %s backup: %w", dir, out, b, ErrNoLogArchive)
	}
	absDir, _ := filepath.Abs(dir)
	if src := links[0].m.Source; src != "" && src != absDir {
		log.Warn("recovery: the backup was made of another path; checking that the log continues it", "backup", out, "source", src, "dir", absDir)
	}
	prev := lastLogFile(links)
	if prev == nil {
		return nil, fmt.Errorf("recovery: incremental backup of %s: %s holds no log file: %w", dir, out, ErrBadBackup)
	}

	incDir := filepath.Join(out, IncrementsDir)
	if err := os.MkdirAll(incDir, 0o750); err != nil {
		return nil, fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	st, err := newStaging(incDir, log)
	if err != nil {
		return nil, fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	defer st.release()
	mode, logs, err := copyLogsSince(ctx, dir, st.dir, *prev, opts.Options)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	last := links[len(links)-1]
	m := &Manifest{Backend: kind, Created: time.Now().UTC(), Source: absDir, Mode: mode,
		Increment: last.m.Increment + 1, Previous: manifestSum(last.raw)}
	if err := writeIncrementManifest(dir, st.dir, m, logs); err != nil {
		return nil, err
	}
	final := filepath.Join(incDir, incrementName(m.Increment))
	// rename(2) fails if another increment took the number meanwhile.
	if err := os.Rename(st.dir, final); err != nil {
		return nil, fmt.Errorf("recovery: incremental backup of %s: move the increment into place: %w", dir, err)
	}
	st.keep()
	if err := syncDir(incDir); err != nil {
		return nil, fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	res := &BackupResult{Out: final, Manifest: m, Bytes: m.Size(), Duration: time.Since(start)}
	log.Info("recovery: increment written", "dir", dir, "backup", out, "increment", m.Increment, "mode", mode,
		"logs", logs[0]+".."+logs[len(logs)-1], "bytes", res.Bytes, "duration", res.Duration)
	return res, nil
}

// checkIncrementable checks that dir holds a Berkeley DB database and out
// is a backup directory (not a stream, which stream says is asked for) an
// increment can be added to; it returns the backend of dir.
func checkIncrementable(dir, out string, stream bool) (string, error) {
	kind, err := backend.Detect(dir)
	if err != nil {
		return "", fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	switch kind {
	case "":
		return "", fmt.Errorf("recovery: incremental backup of %s: the directory holds no database: %w", dir, kv.ErrNotDB)
	case backend.LevelDB:
		return "", fmt.Errorf("recovery: incremental backup of %s: %w", dir, ErrNoLogArchive)
	}
	if stream {
		return "", fmt.Errorf("recovery: incremental backup of %s: increments are added to a backup directory, not to a stream file", dir)
	}
	if fi, err := os.Stat(out); err != nil {
		return "", fmt.Errorf("recovery: incremental backup of %s: the backup directory to add to: %w", dir, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("recovery: incremental backup of %s: %s is a file (a stream backup?); increments are added to a backup directory: take a full backup to a directory first", dir, out)
	}
	return kind, nil
}

// lastLogFile returns the last log file (in latestFiles order) of the
// backup chain links, or nil if it holds none.
func lastLogFile(links []chainLink) *chainFile {
	var prev *chainFile
	for _, f := range latestFiles(links) {
		if isLogName(f.Name) {
			prev = &f
		}
	}
	return prev
}

// writeIncrementManifest completes m with the log files logs copied into
// stage (sorting logs) and writes it there as the increment's manifest,
// synced; dir is the database directory, for errors.
func writeIncrementManifest(dir, stage string, m *Manifest, logs []string) error {
	m.Extra = append(m.Extra, "logs "+logs[0]+" "+logs[len(logs)-1])
	sort.Strings(logs)
	for _, n := range logs {
		size, sum, err := hashFile(filepath.Join(stage, n))
		if err != nil {
			return fmt.Errorf("recovery: incremental backup of %s: hash %s: %w", dir, n, err)
		}
		m.Files = append(m.Files, ManifestFile{Name: n, Size: size, SHA256: sum})
	}
	if err := stagingdir.WriteFileSync(filepath.Join(stage, ManifestName), m.Marshal()); err != nil {
		return fmt.Errorf("recovery: incremental backup of %s: write manifest: %w", dir, err)
	}
	if err := syncDir(stage); err != nil {
		return fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	return nil
}
