package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jmhodges/levigo"

	"github.com/durusbdb/durusbdb/internal/dirlock"
	stagingdir "github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/leveldb"
)

// lockLevelDB takes the directory lock leveldb.OpenStore takes (package
// dirlock, exclusive; mode says whether the lock file may be created),
// failing with ErrLevelDBInUse while a server has the database open.
// Close the lock to release it.
func lockLevelDB(dir string, mode dirlock.Mode) (*dirlock.Lock, error) {
	l, err := dirlock.Take(dir, mode)
	if errors.Is(err, kv.ErrInUse) {
		return nil, fmt.Errorf("recovery: %w: %w", err, ErrLevelDBInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	}
	return l, nil
}

// levelDBFile reports whether a LevelDB database needs the file: CURRENT,
// MANIFEST-*, table files, write-ahead logs and our redo log
// (durusbdb.wal, package leveldb: after a crash it may hold acknowledged
// commits LevelDB lacks). LOCK, LOG, LOG.old and our lock file are not
// part of the database.
func levelDBFile(name string) bool {
	return name == "CURRENT" || name == leveldb.RedoLogName || strings.HasPrefix(name, "MANIFEST-") ||
		strings.HasSuffix(name, ".ldb") || strings.HasSuffix(name, ".sst") ||
		(strings.HasSuffix(name, ".log") && !strings.HasPrefix(name, "log."))
}

// snapshotLevelDB copies a closed LevelDB database (it holds the directory
// lock meanwhile) into stage.
func snapshotLevelDB(ctx context.Context, dir, stage string, opts Options) error {
	lock, err := lockLevelDB(dir, dirlock.ReadExclusive)
	if err != nil {
		return err
	}
	defer lock.Close()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("recovery: backup %s: %w", dir, err)
	}
	var names []string
	var total int64
	for _, e := range ents {
		if e.Type().IsRegular() && levelDBFile(e.Name()) {
			names = append(names, e.Name())
			if fi, err := e.Info(); err == nil {
				total += fi.Size()
			}
		}
	}
	prog := opts.progress("backup "+dir, "bytes", total)
	defer prog.Done()
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		src, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("recovery: backup %s: %w", dir, err)
		}
		c, err := copyFileSync(src, filepath.Join(stage, n))
		src.Close()
		if err != nil {
			return fmt.Errorf("recovery: backup %s: copy %s: %w", dir, n, err)
		}
		prog.Add(c, 0)
	}
	return syncDir(stage)
}

// writeJournal creates path holding text (replacing the journal of an
// interrupted repair), synced with its directory.
func writeJournal(path, text string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := stagingdir.WriteFileSync(path, []byte(text)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// repairLevelDB runs levigo's RepairDatabase on dir, holding its lock.
func repairLevelDB(ctx context.Context, dir string, opts Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lock, err := lockLevelDB(dir, dirlock.Write)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	r := &Report{Dir: dir, Backend: "leveldb", Kind: KindRepair, Ran: true}
	list := func(d string) []string {
		ents, _ := os.ReadDir(d)
		var l []string
		for _, e := range ents {
			if e.Type().IsRegular() {
				l = append(l, e.Name())
			}
		}
		sort.Strings(l)
		return l
	}
	lostDir := filepath.Join(dir, "lost")
	lostBefore := map[string]bool{}
	for _, n := range list(lostDir) {
		lostBefore[n] = true
	}
	r.Before = list(dir)
	// The journal makes an interrupted repair visible: RepairDB archives
	// the logs it converted before it writes the MANIFEST naming their
	// tables, and a directory killed in between opened without its last
	// commits. Every open refuses it until a repair completes.
	journal := filepath.Join(dir, leveldb.RepairJournalName)
	if err := writeJournal(journal, fmt.Sprintf("durusbdb recover --force of %s started %s (pid %d)\n", dir, time.Now().UTC().Format(time.RFC3339), os.Getpid())); err != nil {
		return r, fmt.Errorf("recovery: leveldb repair of %s: %w", dir, err)
	}
	// leveldb::RepairDB replays the logs without their checksums, so a
	// damaged record would come back with the damage in it (a QA round's
	// root record did, and check said ok): the logical records a damaged
	// part belongs to are dropped first, and said so.
	var damaged []leveldb.LogDamage
	for _, n := range list(dir) {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		d, err := leveldb.DropDamagedLogRecords(filepath.Join(dir, n), lostDir)
		if err != nil {
			return r, fmt.Errorf("recovery: leveldb repair of %s: %w (the repair is unfinished: run it again)", dir, err)
		}
		damaged = append(damaged, d...)
	}
	start := time.Now()
	lo := levigo.NewOptions()
	lo.SetCompression(levigo.SnappyCompression)
	err = levigo.RepairDatabase(dir, lo)
	lo.Close()
	r.Duration = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("recovery: leveldb repair of %s: %w (the repair is unfinished: run it again)", dir, err)
	}
	if err := os.Remove(journal); err != nil {
		return r, fmt.Errorf("recovery: leveldb repair of %s: done, but its journal stays: %w", dir, err)
	}
	if err := syncDir(dir); err != nil {
		return r, fmt.Errorf("recovery: leveldb repair of %s: %w", dir, err)
	}
	r.After = list(dir)
	// RepairDB archives in lost/ the MANIFEST files it replaced and the
	// logs it converted to tables (their records are kept), and the table
	// files it could not read (their records are lost).
	var archived []string
	for _, n := range list(lostDir) {
		if lostBefore[n] {
			continue
		}
		if strings.HasSuffix(n, ".ldb") || strings.HasSuffix(n, ".sst") {
			r.Lost = append(r.Lost, n)
		} else {
			archived = append(archived, n)
		}
	}
	r.Messages = append(r.Messages, "repaired with leveldb::RepairDB; run `durusbdb check --repair` to fix the engine's counters")
	for _, d := range damaged {
		r.Messages = append(r.Messages, fmt.Sprintf("log %s: damaged records from offset %d failed their checksums and were dropped: the commits they held are lost (the damaged log is kept in %s)", d.File, d.Offset, lostDir))
	}
	if len(archived) > 0 {
		r.Messages = append(r.Messages, fmt.Sprintf("replaced MANIFEST and converted logs archived in %s: %s", lostDir, strings.Join(archived, ", ")))
	}
	if len(r.Lost) > 0 {
		r.Messages = append(r.Messages, fmt.Sprintf("unreadable table files moved to %s: %s (records in them are lost)", lostDir, strings.Join(r.Lost, ", ")))
	}
	opts.logger().Info("recovery: "+r.Summary(), "lost", strings.Join(r.Lost, ","))
	return r, nil
}
