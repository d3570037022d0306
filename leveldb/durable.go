package leveldb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// logSyncer makes everything LevelDB has written durable for the redo log's
// checkpoints (see the package documentation): syncAll fsyncs the current
// *.log file, every older one still present (once each: a rotated-out log
// is never appended to again; LevelDB closes it without fsync) and the
// directory when log files appeared since the last time.
//
// Listing the directory is skipped while its modification time is
// unchanged and was already more than quiet old when it was last listed
// (file systems stamp mtimes with a coarse clock, so a change made in the
// same tick as the listing could otherwise go unnoticed). One stat per
// checkpoint is the usual cost.
type logSyncer struct {
	dir string

	mu       sync.Mutex
	dirMtime time.Time       // mtime of dir at the last listing
	listedAt time.Time       // when that listing was made
	known    map[string]bool // log files present at the last listing (their entries are synced)
	synced   map[string]bool // older log files already fsynced
	oldSyncs int             // older log files fsynced so far (for tests)
	dirSyncs int             // directory fsyncs so far (for tests)
	current  string          // newest log file at the last listing
	curSyncs int             // fsyncs of the current log file so far (for tests)
}

// quiet is how old a directory mtime must be for it to be trusted.
const quiet = 2 * time.Second

func (l *logSyncer) init() error {
	l.known = map[string]bool{}
	l.synced = map[string]bool{}
	return l.syncLocked(true)
}

// syncAll fsyncs the current (newest) log file, every older one not yet
// fsynced and, when log files appeared, the directory: it makes every write
// LevelDB has already handed to the operating system durable.
func (l *logSyncer) syncAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.syncLocked(false); err != nil {
		return err
	}
	if l.current == "" {
		return nil
	}
	l.curSyncs++
	return fsyncFile(filepath.Join(l.dir, l.current))
}

func (l *logSyncer) syncLocked(force bool) error {
	fi, err := os.Stat(l.dir)
	if err != nil {
		return err
	}
	mt := fi.ModTime()
	if !force && mt.Equal(l.dirMtime) && l.listedAt.Sub(mt) > quiet {
		return nil
	}
	listedAt := time.Now()
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var logs []string
	maxNum := int64(-1)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if err != nil {
			continue
		}
		logs = append(logs, name)
		maxNum = max(maxNum, n)
	}
	changed := force
	present := make(map[string]bool, len(logs))
	for _, name := range logs {
		present[name] = true
		if !l.known[name] {
			changed = true
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if n == maxNum || l.synced[name] {
			continue
		}
		if err := fsyncFile(filepath.Join(l.dir, name)); err != nil {
			return err
		}
		l.synced[name] = true
		l.oldSyncs++
	}
	for name := range l.synced {
		if !present[name] {
			delete(l.synced, name)
		}
	}
	if changed {
		if err := fsyncFile(l.dir); err != nil {
			return err
		}
		l.dirSyncs++
	}
	l.known = present
	l.current = ""
	if maxNum >= 0 {
		l.current = strconv.FormatInt(maxNum, 10) + ".log"
		for _, name := range logs {
			if n, _ := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64); n == maxNum {
				l.current = name // keep LevelDB's zero padding
			}
		}
	}
	l.dirMtime, l.listedAt = mt, listedAt
	return nil
}

// fsyncFile fsyncs path (a file or a directory); a file removed meanwhile
// is fine (LevelDB deletes a log only once its contents are in a synced
// table).
func fsyncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
