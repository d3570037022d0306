//go:build bdb

package recovery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
)

// openForBackup opens the environment of dir for a backup: offline
// (holding the directory lock) if no process owns it, else joined to the
// owner's (hot). The returned function closes what was opened.
func openForBackup(dir string, opts Options) (*bdb.Env, string, func(), error) {
	lock, err := bdb.LockDir(dir)
	switch {
	case err == nil:
		env, err := bdb.OpenEnv(dir, bdb.EnvOptions{CacheSize: opts.CacheSize})
		if err != nil {
			lock.Close()
			return nil, "", nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
		}
		return env, "offline", func() { env.Close(); lock.Close() }, nil
	case errors.Is(err, kv.ErrInUse):
		opts.logger().Info("recovery: a server owns the directory; joining its environment for a hot backup", "dir", dir)
		env, err := bdb.JoinEnv(dir, opts.CacheSize)
		if errors.Is(err, bdb.ErrRunRecovery) {
			return nil, "", nil, fmt.Errorf("recovery: backup %s: the environment needs recovery but another process holds %s: %w", dir, bdb.LockFile, err)
		}
		if err != nil {
			return nil, "", nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
		}
		return env, "hot", func() { env.Close() }, nil
	}
	return nil, "", nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
}

// copyLogsSince copies into stage the log files of dir from prev's number
// on, after checking that the log of dir continues the backup whose last
// log file is prev. It returns the mode ("hot" or "offline") and the
// names copied.
func copyLogsSince(ctx context.Context, dir, stage string, prev chainFile, opts Options) (string, []string, error) {
	env, mode, closeEnv, err := openForBackup(dir, opts)
	if err != nil {
		return "", nil, err
	}
	defer closeEnv()
	// A checkpoint marks this point of the log: a point-in-time recovery
	// (restore --until) needs a checkpoint in the log before its time,
	// and a server writes its own only every --checkpoint-interval (none
	// with --checkpoint-manual). Then every commit acknowledged so far is
	// in the log files on disk.
	if err := env.Checkpoint(); err != nil {
		return "", nil, fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	if err := env.Flush(); err != nil {
		return "", nil, fmt.Errorf("recovery: incremental backup of %s: %w", dir, err)
	}
	h := &logHolder{dir: dir, files: map[int]*os.File{}, names: map[int]string{}}
	defer h.close()
	if err := h.scan(); err != nil {
		return "", nil, err
	}
	op := "incremental backup of " + dir
	nums, err := h.consecutiveLogs(op)
	if err != nil {
		return "", nil, err
	}
	prevNum := bdb.LogNumber(prev.Name)
	if err := checkLogContinues(h, nums, prev, prevNum); err != nil {
		return "", nil, err
	}
	logs, err := h.copyHeld(ctx, stage, nums[prevNum-nums[0]:], op, "incremental backup "+dir+" (log files)", opts)
	if err != nil {
		return "", nil, err
	}
	return mode, logs, nil
}

// checkLogContinues checks that the held log files nums (consecutive,
// ascending) of h continue the backup whose last log file is prev,
// numbered prevNum: they reach from at most prevNum to at least it, and
// the source's prevNum begins as the backup's copy does. It fails with
// ErrFullBackupNeeded otherwise.
func checkLogContinues(h *logHolder, nums []int, prev chainFile, prevNum int) error {
	dir := h.dir
	first, last := nums[0], nums[len(nums)-1]
	if first > prevNum {
		return fmt.Errorf("recovery: incremental backup of %s: the backup ends in %s, but the oldest log file left in the directory is %s: "+
			"the log files in between were removed after the last backup (a server removes log files after its checkpoints unless it runs with --keep-logs), "+
			"so the changes they held cannot be added; take a full backup, and serve with --keep-logs for increments to work: %w",
			dir, prev.Name, h.names[first], ErrFullBackupNeeded)
	}
	if last < prevNum {
		return fmt.Errorf("recovery: incremental backup of %s: the backup ends in %s, but the log of the directory ends in %s: "+
			"the backup is not of this database, or its log was reset (restore, upgrade); take a full backup: %w",
			dir, prev.Name, h.names[last], ErrFullBackupNeeded)
	}
	// The source's copy of that log file must begin as the backup's does
	// (up to where the backup's copy had data: libdb pre-extends log
	// files with zeros).
	end, err := dataEnd(filepath.Join(prev.dir, prev.Name))
	if err != nil {
		return fmt.Errorf("recovery: incremental backup of %s: read the backup's %s: %v: %w", dir, prev.Name, err, ErrBadBackup)
	}
	if n := end - tailSlack; n > 0 {
		a, err := prefixSum(filepath.Join(prev.dir, prev.Name), n)
		if err != nil {
			return fmt.Errorf("recovery: incremental backup of %s: read the backup's %s: %v: %w", dir, prev.Name, err, ErrBadBackup)
		}
		b, err := prefixSum(h.files[prevNum], n)
		if err != nil || a != b {
			return fmt.Errorf("recovery: incremental backup of %s: %s in the directory does not begin as its copy in the backup (read error: %v): "+
				"the backup is not of this database, or its log was reset (restore, upgrade); take a full backup: %w",
				dir, prev.Name, err, ErrFullBackupNeeded)
		}
	}
	return nil
}

// prefixSum returns the SHA-256 of the first n bytes of src (a path or an
// open file).
func prefixSum(src any, n int64) (string, error) {
	var r io.ReaderAt
	switch s := src.(type) {
	case string:
		f, err := os.Open(s)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	case *os.File:
		r = s
	}
	h := sha256.New()
	m, err := io.Copy(h, io.NewSectionReader(r, 0, n))
	if err != nil {
		return "", err
	}
	if m != n {
		return "", fmt.Errorf("only %d of %d bytes", m, n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dataEnd returns the offset just past the last non-zero byte of the file.
func dataEnd(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var off, end int64
	for {
		n, err := f.Read(buf)
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				end = off + int64(i) + 1
				break
			}
		}
		off += int64(n)
		if err == io.EOF {
			return end, nil
		}
		if err != nil {
			return 0, err
		}
	}
}
