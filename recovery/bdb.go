//go:build bdb

package recovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/engine"
	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

func bdbCompiled() bool { return true }

// dataFiles are the database files of the layout (FORMAT.md §1).
func dataFiles() []string {
	var l []string
	for _, b := range engine.Buckets(false, 0) {
		l = append(l, b.File)
	}
	return l
}

// pageChecksumsOff is PageChecksumsOff for a Berkeley DB directory.
func pageChecksumsOff(dir string) ([]string, error) {
	var off []string
	for _, f := range dataFiles() {
		p := filepath.Join(dir, f)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		fv, err := bdb.ReadFileVersion(p)
		if err != nil {
			return nil, fmt.Errorf("recovery: %w", err)
		}
		if !fv.Checksums {
			off = append(off, f)
		}
	}
	return off, nil
}

// logHolder keeps every log file of a directory open from the moment it
// is seen, so that the owner removing it after a checkpoint cannot take
// it away from the backup.
type logHolder struct {
	dir   string
	mu    sync.Mutex
	files map[int]*os.File
	names map[int]string
}

// scan opens the log files of the directory not yet held.
func (h *logHolder) scan() error {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		return fmt.Errorf("recovery: backup %s: list log files: %w", h.dir, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range ents {
		n := bdb.LogNumber(e.Name())
		if n == 0 || h.files[n] != nil {
			continue
		}
		if bdb.LogHeaderUnwritten(filepath.Join(h.dir, e.Name())) {
			// The next log file, written ahead with zeros (bdb's
			// prezeroer) or created by a switch not yet written: it
			// holds no record. Copied, it would end the backup with a
			// file the next increment finds changed.
			continue
		}
		f, err := os.Open(filepath.Join(h.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing: it was not needed
		}
		if err != nil {
			return fmt.Errorf("recovery: backup %s: open log file: %w", h.dir, err)
		}
		h.files[n] = f
		h.names[n] = e.Name()
	}
	return nil
}

func (h *logHolder) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.files {
		f.Close()
	}
	h.files = nil
}

// snapshotBDB copies the database files, then the log files, of the
// Berkeley DB directory dir into stage, alongside a running server or
// holding the directory lock; see the package doc. It returns "hot" or
// "offline" and the log files copied.
func snapshotBDB(ctx context.Context, dir, stage string, opts Options) (string, []string, error) {
	files := dataFiles()
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return "", nil, fmt.Errorf("recovery: backup %s: database file %s: %w", dir, f, err)
		}
	}
	env, mode, closeEnv, err := openForBackup(dir, opts)
	if err != nil {
		return "", nil, err
	}
	defer closeEnv()

	h := &logHolder{dir: dir, files: map[int]*os.File{}, names: map[int]string{}}
	defer h.close()
	if err := h.scan(); err != nil {
		return "", nil, err
	}
	// Watch for log files created while the database files are copied.
	stopWatch := h.watch()
	defer stopWatch()
	if err := copyDataFiles(ctx, env, dir, stage, files, opts); err != nil {
		return "", nil, err
	}
	if opts.hook != nil {
		opts.hook("database files copied")
	}
	// Every commit made so far, and so every one acknowledged before the
	// backup began, is now in the log files on disk.
	if err := env.Flush(); err != nil {
		return "", nil, fmt.Errorf("recovery: backup %s: %w", dir, err)
	}
	if err := stopWatch(); err != nil {
		return "", nil, err
	}
	if err := h.scan(); err != nil {
		return "", nil, err
	}
	logs, err := h.copyLogs(ctx, stage, opts)
	if err != nil {
		return "", nil, err
	}
	if err := syncDir(stage); err != nil {
		return "", nil, fmt.Errorf("recovery: backup %s: sync %s: %w", dir, stage, err)
	}
	return mode, logs, nil
}

// watch scans for new log files every 5 ms until the returned stop
// function is called; stop returns the first scan error (and nil when
// called again).
func (h *logHolder) watch() (stop func() error) {
	done := make(chan struct{})
	watchErr := make(chan error, 1)
	go func(done <-chan struct{}) {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				watchErr <- nil
				return
			case <-t.C:
				if err := h.scan(); err != nil {
					watchErr <- err
					return
				}
			}
		}
	}(done)
	return func() error {
		if done == nil {
			return nil
		}
		close(done)
		done = nil
		return <-watchErr
	}
}

// copyDataFiles copies the database files of dir into stage through env
// (DB->copy-like page reads, consistent with a running writer).
func copyDataFiles(ctx context.Context, env *bdb.Env, dir, stage string, files []string, opts Options) error {
	var total int64
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			total += fi.Size()
		}
	}
	prog := opts.progress("backup "+dir+" (database files)", "bytes", total)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := env.CopyDB(f, stage); err != nil {
			return fmt.Errorf("recovery: backup %s: %w", dir, err)
		}
		if fi, err := os.Stat(filepath.Join(stage, f)); err == nil {
			prog.Add(fi.Size(), 0)
		}
	}
	prog.Done()
	return nil
}

// copyLogs copies the held log files into stage, after checking that
// they are consecutive (ErrLogGap otherwise), and returns their names.
func (h *logHolder) copyLogs(ctx context.Context, stage string, opts Options) ([]string, error) {
	op := "backup " + h.dir
	nums, err := h.consecutiveLogs(op)
	if err != nil {
		return nil, err
	}
	return h.copyHeld(ctx, stage, nums, op, op+" (log files)", opts)
}

// consecutiveLogs returns the numbers of the held log files, ascending,
// after checking that there is one at least and that they are consecutive
// (ErrLogGap otherwise); op names the operation in errors ("backup DIR").
func (h *logHolder) consecutiveLogs(op string) ([]int, error) {
	h.mu.Lock()
	nums := make([]int, 0, len(h.files))
	for n := range h.files {
		nums = append(nums, n)
	}
	h.mu.Unlock()
	sort.Ints(nums)
	if len(nums) == 0 {
		return nil, fmt.Errorf("recovery: %s: no log files in the directory", op)
	}
	for i, n := range nums {
		if n != nums[0]+i {
			return nil, fmt.Errorf("recovery: %s: log files jump from %d to %d: %w", op, nums[i-1], n, ErrLogGap)
		}
	}
	return nums, nil
}

// copyHeld copies the held log files numbered nums into stage and returns
// their names; op names the operation in errors, progName in progress
// reports.
func (h *logHolder) copyHeld(ctx context.Context, stage string, nums []int, op, progName string, opts Options) ([]string, error) {
	var logs []string
	prog := opts.progress(progName, "files", int64(len(nums)))
	for _, n := range nums {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := h.names[n]
		if _, err := copyFileSync(io.NewSectionReader(h.files[n], 0, 1<<62), filepath.Join(stage, name)); err != nil {
			return nil, fmt.Errorf("recovery: %s: copy %s: %w", op, name, err)
		}
		logs = append(logs, name)
		prog.Add(1, 0)
	}
	prog.Done()
	return logs, nil
}

// recoverBDB runs normal or catastrophic recovery in dir, holding the
// directory lock, with libdb's verbose recovery messages captured, and
// marks the directory clean when it succeeds. With onlyIfNeeded, normal
// recovery runs only if the last writer did not close the directory
// (bdb.NeedsRecovery); the report then says Ran false.
func recoverBDB(ctx context.Context, dir string, catastrophic, onlyIfNeeded bool, opts Options) (*Report, error) {
	return recoverBDBUntil(ctx, dir, catastrophic, onlyIfNeeded, time.Time{}, opts)
}

// recoverBDBUntil is recoverBDB with catastrophic recovery bounded by
// until when it is set (point-in-time recovery, bdb.RecoverOptions.Until).
func recoverBDBUntil(ctx context.Context, dir string, catastrophic, onlyIfNeeded bool, until time.Time, opts Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind := KindNormal
	if catastrophic || !until.IsZero() {
		kind = KindCatastrophic
	}
	r := &Report{Dir: dir, Backend: "bdb", Kind: kind}
	lock, err := bdb.LockDir(dir)
	if err != nil {
		if errors.Is(err, kv.ErrInUse) {
			return nil, fmt.Errorf("recovery: %s recovery of %s: a server (or another process) owns the directory; stop it first (a server runs normal recovery itself when it starts): %w", kind, dir, err)
		}
		return nil, fmt.Errorf("recovery: %s recovery of %s: %w", kind, dir, err)
	}
	defer lock.Close()
	start := time.Now()
	need, err := bdb.NeedsRecovery(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: %s recovery of %s: %w", kind, dir, err)
	}
	r.Unclean = need
	if onlyIfNeeded && !catastrophic && !need {
		r.Duration = time.Since(start)
		return r, nil
	}
	// libdb takes a damaged record in the last log file for the end of
	// the log and cuts everything after it: look first (logcheck.go).
	l, err := scanLog(dir)
	if err != nil {
		return nil, err
	}
	plan := planLog(dir, l, opts.discardDamagedLog)
	if plan.refuse != nil {
		return r, plan.refuse
	}
	if r.KeptLogs, err = plan.keepFiles(dir); err != nil {
		return r, err
	}
	plan.logKept(opts.logger(), r.KeptLogs)
	mf, err := newMessageFile()
	if err != nil {
		return nil, fmt.Errorf("recovery: %s recovery of %s: %w", kind, dir, err)
	}
	defer mf.close()
	start = time.Now()
	info, err := bdb.RecoverEnv(dir, bdb.RecoverOptions{Catastrophic: catastrophic, MessageFile: mf.path, CacheSize: opts.CacheSize, Until: until, LogChecked: true})
	r.Duration = time.Since(start)
	r.parseMessages(mf.read())
	if err != nil {
		msg := ""
		if len(r.Messages) > 0 {
			msg = " (libdb said: " + strings.Join(r.Messages, "; ") + ")"
		}
		return r, plan.explain(fmt.Errorf("recovery: %s recovery of %s failed%s: %w", kind, dir, msg, err))
	}
	plan.logPassed(opts.logger())
	if err := bdb.MarkRecovered(lock); err != nil {
		return r, fmt.Errorf("recovery: %s recovery of %s: %w", kind, dir, err)
	}
	r.Ran = true
	r.To = lsn(info.EndFile, info.EndOffset)
	if r.Checkpoint == "" {
		r.Checkpoint = lsn(info.CkpFile, info.CkpOffset)
	}
	r.LogFiles = info.LogFiles
	return r, nil
}

// readFormats reads the formats of the log and database files of dir.
func readFormats(dir string) ([]FileFormat, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: read %s: %w", dir, err)
	}
	var out []FileFormat
	want := map[string]bool{}
	for _, f := range dataFiles() {
		want[f] = true
	}
	// Log files that hold no record: the last one created by a switch
	// that a kill -9 interrupted, or written ahead (bdb's prezeroer), and
	// ones written ahead that libdb passed by. libdb's open and recovery
	// pass over them; they are not damage for us to refuse.
	lastStray, belowStray, err := bdb.StrayLogs(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	}
	stray := map[string]bool{lastStray: lastStray != ""}
	for _, n := range belowStray {
		stray[n] = true
	}
	for _, e := range ents {
		n := e.Name()
		if !want[n] && bdb.LogNumber(n) == 0 || stray[n] {
			continue
		}
		fv, err := bdb.ReadFileVersion(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, FileFormat{Name: fv.Name, Kind: fv.Kind, Version: fv.Version, Current: fv.Current})
	}
	return out, nil
}

// upgradeBDB is Upgrade for a Berkeley DB directory.
func upgradeBDB(ctx context.Context, dir string, opts UpgradeOptions) (*UpgradeReport, error) {
	start := time.Now()
	log := opts.logger()
	rep := &UpgradeReport{Dir: dir}
	lock, err := bdb.LockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recovery: upgrade %s: stop every process using the directory first: %w", dir, err)
	}
	defer lock.Close()
	if rep.Before, err = readFormats(dir); err != nil {
		return nil, fmt.Errorf("recovery: upgrade %s: %w", dir, err)
	}
	oldLogs, oldDBs := false, false
	for _, f := range rep.Before {
		if !f.Current {
			if f.Kind == "log" {
				oldLogs = true
			} else {
				oldDBs = true
			}
		}
	}
	for _, f := range dataFiles() {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("recovery: upgrade %s: database file %s: %w", dir, f, err)
		}
	}
	// Refuse an unclean directory before touching anything.
	if oldLogs || oldDBs {
		if err := refuseUnclean(dir, log); err != nil {
			return nil, err
		}
	}

	if !oldLogs && !oldDBs {
		// Nothing to upgrade: nothing is changed, and nothing copied.
		rep.After, rep.NoOp, rep.Duration = rep.Before, true, time.Since(start)
		log.Info("recovery: upgrade: every file is already in this release's format; nothing to do", "dir", dir)
		return rep, nil
	}
	// The backup copy, before anything changes.
	if rep.BackupDir, err = upgradeBackup(ctx, dir, opts); err != nil {
		return nil, fmt.Errorf("recovery: upgrade %s: backup copy: %w", dir, err)
	}
	log.Info("recovery: upgrade: backup copy made", "dir", dir, "backup", rep.BackupDir)

	if err := upgradeFiles(ctx, dir, rep, oldLogs); err != nil {
		return nil, err
	}
	if rep.After, err = readFormats(dir); err != nil {
		return nil, fmt.Errorf("recovery: upgrade %s: %w", dir, err)
	}
	for _, f := range rep.After {
		if !f.Current {
			return rep, fmt.Errorf("recovery: upgrade %s: %s is still %s version %d after the upgrade (backup copy in %s)", dir, f.Name, f.Kind, f.Version, rep.BackupDir)
		}
	}
	rep.NoOp = !oldLogs && !oldDBs
	rep.Duration = time.Since(start)
	log.Info("recovery: upgrade done", "dir", dir, "backup", rep.BackupDir, "no_op", rep.NoOp,
		"upgraded", strings.Join(rep.Upgraded, ","), "logs_removed", len(rep.LogsRemoved), "duration", rep.Duration)
	return rep, nil
}

// upgradeBackup copies dir to opts.BackupDir, or to a new sibling named
// DIR.pre-upgrade-YYYYMMDDTHHMMSS (-2, -3, ... when that exists: an
// upgrade killed after its copy and run again within the second), and
// returns the copy's path. The copy is made in a flocked staging directory
// and renamed into place when complete and synced, as a backup is: an
// upgrade killed while copying leaves no partial copy under a backup's
// name, and the next upgrade or backup removes its staging directory.
func upgradeBackup(ctx context.Context, dir string, opts UpgradeOptions) (string, error) {
	out := opts.BackupDir
	if out == "" {
		base := filepath.Clean(dir) + ".pre-upgrade-" + time.Now().UTC().Format("20060102T150405")
		out = base
		for i := 2; ; i++ {
			if _, err := os.Lstat(out); errors.Is(err, fs.ErrNotExist) {
				break
			}
			out = fmt.Sprintf("%s-%d", base, i)
		}
	}
	if _, err := stagingdir.Settle(out, opts.logger()); err != nil {
		return "", err
	}
	if err := checkEmptyDir(out, "", "the copy made before an upgrade goes into a new or empty directory"); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	st, err := stagingFor(abs, opts.logger())
	if err != nil {
		return "", err
	}
	defer st.release()
	if err := copyDir(ctx, dir, st.dir, opts.Options); err != nil {
		return "", err
	}
	if err := moveIntoPlace(st, out); err != nil {
		return "", err
	}
	return out, nil
}

// refuseUnclean refuses, with ErrUnclean, a directory whose last writer
// did not close it: the lock file's mark or the environment says so, or
// the engine's meta "in_use" is still set (read from an upgraded scratch
// copy of meta.db: the original may be too old for this libdb to read).
func refuseUnclean(dir string, log *slog.Logger) error {
	unclean, err := bdb.NeedsRecovery(dir)
	if err != nil {
		return fmt.Errorf("recovery: upgrade %s: cannot tell whether it was shut down cleanly: %w", dir, err)
	}
	if unclean {
		pids, _ := registeredPIDs(dir)
		return fmt.Errorf("recovery: upgrade %s: its last writer (registered processes %v) never closed the environment: open it with the Berkeley DB release that wrote it so that it recovers, close it cleanly, then upgrade: %w", dir, pids, ErrUnclean)
	}
	inUse, err := metaInUse(dir, log)
	if err != nil {
		return fmt.Errorf("recovery: upgrade %s: cannot tell whether it was shut down cleanly: %w", dir, err)
	}
	if inUse {
		return fmt.Errorf("recovery: upgrade %s: meta in_use is set: the last writer did not close it; open it with the Berkeley DB release that wrote it so that it recovers, close it cleanly, then upgrade: %w", dir, ErrUnclean)
	}
	return nil
}

// upgradeFiles upgrades every database file of rep.Before in place,
// resetting their LSNs when the logs are old, and then removes the old
// logs and the region files, recording all of it in rep.
func upgradeFiles(ctx context.Context, dir string, rep *UpgradeReport, oldLogs bool) error {
	for _, f := range rep.Before {
		if f.Kind == "log" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := bdb.UpgradeFile(dir, f.Name, oldLogs); err != nil {
			return fmt.Errorf("recovery: upgrade %s (backup copy in %s): %w", dir, rep.BackupDir, err)
		}
		if !f.Current {
			rep.Upgraded = append(rep.Upgraded, f.Name)
		}
		if oldLogs {
			rep.LSNReset = append(rep.LSNReset, f.Name)
		}
	}
	if !oldLogs {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("recovery: upgrade %s: %w", dir, err)
	}
	for _, e := range ents {
		n := e.Name()
		isLog := bdb.LogNumber(n) != 0
		if !isLog && !strings.HasPrefix(n, "__db.") {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("recovery: upgrade %s: remove old %s: %w", dir, n, err)
		}
		if isLog {
			rep.LogsRemoved = append(rep.LogsRemoved, n)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("recovery: upgrade %s: %w", dir, err)
	}
	return nil
}

// metaInUse copies meta.db of dir to a scratch directory, upgrades the
// copy and reports whether its "in_use" key is set.
func metaInUse(dir string, log *slog.Logger) (bool, error) {
	// A staging directory (flocked): one an upgrade killed here left is
	// removed by the next. (Not durusbdb-upgrade-check-*, an older
	// release's name: those are not flocked while in use.)
	sd, err := stagingdir.New(os.TempDir(), "durusbdb-upgrade-scratch-", "upgrade check", 0o700, log)
	if err != nil {
		return false, err
	}
	defer sd.Release()
	tmp := sd.Path
	src, err := os.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		return false, err
	}
	_, err = copyFileSync(src, filepath.Join(tmp, "meta.db"))
	src.Close()
	if err != nil {
		return false, err
	}
	if err := bdb.UpgradeFile(tmp, "meta.db", true); err != nil {
		return false, err
	}
	env, err := bdb.OpenEnv(tmp, bdb.EnvOptions{ReadOnly: true})
	if err != nil {
		return false, err
	}
	defer env.Close()
	db, err := env.OpenDB("meta.db", bdb.DBOptions{Access: bdb.Existing})
	if err != nil {
		return false, err
	}
	_, err = db.Get(nil, []byte(engine.MetaInUse))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bdb.ErrNotFound):
		return false, nil
	}
	return false, err
}

// copyDir copies every regular file of src except the lock file into the
// empty directory dst (a staging directory), syncing each.
func copyDir(ctx context.Context, src, dst string, opts Options) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && e.Type().IsRegular() {
			total += fi.Size()
		}
	}
	prog := opts.progress("copy "+src+" to "+dst, "bytes", total)
	defer prog.Done()
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.Type().IsRegular() || e.Name() == bdb.LockFile {
			continue
		}
		f, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		n, err := copyFileSync(f, filepath.Join(dst, e.Name()))
		f.Close()
		if err != nil {
			return err
		}
		prog.Add(n, 0)
	}
	return syncDir(dst)
}

// registeredPIDs returns the process ids still registered in the
// environment's __db.register file (DB_REGISTER): one 25-byte slot per
// process, "X"-marked when the process closed the environment. A pid left
// there belongs to a process that did not close it (it crashed, or it
// still runs). No file: none.
func registeredPIDs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "__db.register"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == 'X' {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(strings.TrimSpace(line), &pid); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
