package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/kv"
)

// ErrFailed marks the engine's fatal state: the storage reported that it
// needs recovery (Berkeley DB DB_RUNRECOVERY, a panicked environment) or a
// flush of the log failed, so nothing written since the last good flush
// can be promised durable. Every later commit is refused; the owner must
// stop and reopen (which recovers). DB.Failed closes when it is entered.
var ErrFailed = errors.New("engine: storage failed: stop and restart (the restart runs recovery)")

// fatalState is the engine's fatal state; see ErrFailed.
type fatalState struct {
	once sync.Once
	ch   chan struct{} // closed on entry
	mu   sync.Mutex
	err  error // the cause, wrapping ErrFailed
}

// probeEvery is how often the watchdog makes one storage round trip, so
// that an environment that panicked while idle is noticed.
const probeEvery = time.Second

// stuckWait bounds how long Close waits for the background work (the
// collector, checkpoints, the watchdog, a full collection) once the
// storage has failed: a goroutine that was waiting for a lock inside
// libdb when its environment panicked is never woken (libdb does not
// wake waiters on a panic). A variable so that tests can shorten it.
var stuckWait = 10 * time.Second

// writeLock is the engine's writer mutex (DB.writeMu): a sync.Mutex that
// also says since when it is held, so that the watchdog can tell a write
// that never returns.
type writeLock struct {
	mu    sync.Mutex
	since atomic.Int64 // UnixNano when taken; 0 while free
}

// Lock takes the lock and notes the time.
func (l *writeLock) Lock() {
	l.mu.Lock()
	l.since.Store(time.Now().UnixNano())
}

// LockUnwatched takes the lock for a holder that keeps it across long
// scans (Check, Import): the breaker does not time the hold, only the
// holder's write transactions (DB.updateWatched).
func (l *writeLock) LockUnwatched() {
	l.mu.Lock()
}

// Unlock releases the lock.
func (l *writeLock) Unlock() {
	l.since.Store(0)
	l.mu.Unlock()
}

// heldFor returns how long the lock has been held (0 when free).
func (l *writeLock) heldFor(now time.Time) time.Duration {
	if t := l.since.Load(); t != 0 {
		return now.Sub(time.Unix(0, t))
	}
	return 0
}

// updateWatched is kv.Update on the store for a holder of writeMu taken
// with LockUnwatched: the breaker times this transaction alone.
func (db *DB) updateWatched(ctx context.Context, d kv.Durability, fn func(kv.Txn) error) error {
	db.writeMu.since.Store(time.Now().UnixNano())
	defer db.writeMu.since.Store(0)
	return kv.Update(ctx, db.store, d, fn)
}

// stuckWrite is how long a writer may hold writeMu, while the database's
// file system has no room left (fullDisk), before the watchdog takes it
// for stuck inside the storage: libdb, unable to write dirty pages out
// on a full disk, can wait for cache space for ever (a full collection's
// sweep with a small cache did, in __memp_alloc). A variable for tests.
var stuckWrite = 30 * time.Second

// fullDisk is the free space below which the file system counts as full
// for the watchdog: what a write needs is not there.
const fullDisk = 1 << 20

// breakStuckWrite puts a storage that can be (kv.Panicker) in its failed
// state when a write has held writeMu for stuckWrite while the file system
// is full: the waiting call then returns an error wrapping
// kv.ErrNeedRecover, the engine fails and its owner stops (a server exits
// for its supervisor; a tool reports the error) instead of hanging for
// ever. Nothing committed is lost: the restart's recovery replays the log.
func (db *DB) breakStuckWrite(now time.Time) {
	held := db.writeMu.heldFor(now)
	if held < stuckWrite {
		return
	}
	p, ok := db.store.(kv.Panicker)
	if !ok {
		return
	}
	if free, err := db.space.freeNow(); err != nil || free >= fullDisk {
		return
	}
	db.log.Error("engine: a write has waited inside the storage for "+held.Round(time.Second).String()+" while the file system of "+db.dir+" is full (Berkeley DB waits for cache space it cannot write out): putting the storage in its failed state so that the write returns; free space, then restart (recovery runs, nothing committed is lost)", "dir", db.dir)
	if err := p.Panic(); err != nil {
		db.log.Error("engine: could not put the stuck storage in its failed state", "dir", db.dir, "err", err)
	}
}

// waitBackground waits for the background goroutines (db.wg) and reports
// whether they all ended. It waits without bound while the storage is
// sound, and for stuckWait more once it has failed.
func (db *DB) waitBackground() bool {
	done := make(chan struct{})
	go func() {
		db.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-db.fatal.ch:
	}
	select {
	case <-done:
		return true
	case <-time.After(stuckWait):
		return false
	}
}

// Failed returns a channel closed once the storage has failed fatally
// (see ErrFailed); FailErr then says why. A server stops serving and exits
// non-zero, so that a supervisor restarts it and recovery runs.
func (db *DB) Failed() <-chan struct{} { return db.fatal.ch }

// FailErr returns the cause of the fatal state, wrapping ErrFailed, or nil.
func (db *DB) FailErr() error {
	db.fatal.mu.Lock()
	defer db.fatal.mu.Unlock()
	return db.fatal.err
}

// fail enters the fatal state with cause (the first cause wins) and logs it.
func (db *DB) fail(cause error) {
	db.fatal.once.Do(func() {
		db.fatal.mu.Lock()
		db.fatal.err = fmt.Errorf("%w: %w", ErrFailed, cause)
		db.fatal.mu.Unlock()
		switch {
		case errors.Is(cause, ErrSiteRemoved):
			db.log.Error("engine: it stops serving: "+SiteRemovedAdvice, "dir", db.dir, "err", cause)
		case errors.Is(cause, kv.ErrNoSpace):
			db.log.Error("engine: "+NoSpaceAdvice(db.dir), "dir", db.dir, "err", cause)
		case errors.Is(cause, kv.ErrCorrupt):
			db.log.Error("engine: "+DamageAdvice(db.dir), "dir", db.dir, "err", cause)
		case errors.Is(cause, kv.ErrCacheFull):
			db.log.Error("engine: "+CacheAdvice(db.opts.CacheSize), "dir", db.dir, "err", cause)
		default:
			db.log.Error("engine: storage failed; stop and restart so that recovery runs", "dir", db.dir, "err", cause)
		}
		close(db.fatal.ch)
	})
}

// NoSpaceAdvice is what an operator must do after the file system of dir
// filled up under a write that could not be refused (another process wrote
// past the free-space reserve): the restart itself needs room (recovery,
// Berkeley DB's region files, LevelDB's replay of its log into a table).
func NoSpaceAdvice(dir string) string {
	return "the disk filled up during a write (past the free-space reserve: another process?); stop, free space on the file system of " + dir + " (df -h; df -i for inodes), then restart (opening the database needs room too)"
}

// DamageAdvice is what an operator must do after the storage found a file
// of dir damaged on disk (a Berkeley DB page that failed its checksum): a
// restart recovers the environment, not the page, so the next read of it
// stops the server again.
func DamageAdvice(dir string) string {
	return "a file of " + dir + " is damaged on disk (a restart will not mend it: the next read of the damaged page stops the server again); stop, run `durusbdb check --dir " + dir + "` to see the damage, then restore the latest backup into a new directory (`durusbdb restore`) and serve that, or serve from a replica"
}

// CacheAdvice is what an operator must do after a transaction needed more
// of Berkeley DB's cache (or its lock or transaction tables) than the
// server's --cache-size (size bytes; 0 means the default) gives it.
func CacheAdvice(size int64) string {
	if size <= 0 {
		size = kv.DefaultCacheSize
	}
	return fmt.Sprintf("a transaction needed more of the storage's cache than --cache-size (%d MiB) gives it (a very large commit, or a long scan beside one); restart with a larger --cache-size (twice as large, say)", size>>20)
}

// noteErr enters the fatal state if err says the storage needs recovery,
// and returns err.
func (db *DB) noteErr(err error) error {
	if err != nil && errors.Is(err, kv.ErrNeedRecover) {
		db.fail(err)
	}
	return err
}

// tick runs fn every d until the DB closes or fails: a background loop
// of db.wg (the watchdog's probe, the stuck-write breaker; each in a
// goroutine of its own, since the probe's read may wait inside the same
// stuck storage that the breaker is there to free).
func (db *DB) tick(d time.Duration, fn func(now time.Time)) {
	defer db.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-db.ctx.Done():
			return
		case <-db.fatal.ch:
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// watch probes the storage (every probeEvery, from tick) with one read of
// the layout key: a libdb environment that panicked fails every call with
// DB_RUNRECOVERY, committing or not.
func (db *DB) watch(time.Time) {
	if err := db.probe(); err != nil && db.ctx.Err() == nil {
		db.noteErr(err)
	}
}

// probe makes one storage round trip: a read of the meta layout key in a
// read transaction. On Berkeley DB that is a snapshot read, which takes no
// page lock: a non-transactional get waits for a writer's locks, and if
// the environment panics while a writer holds them (a failed undo), libdb
// never wakes it, so the probe, and Close waiting for it, hung for ever.
func (db *DB) probe() error {
	return kv.View(db.ctx, db.store, func(tx kv.Txn) error {
		_, err := tx.Get(BucketMeta, []byte(MetaLayout))
		if errors.Is(err, kv.ErrNotFound) {
			return nil
		}
		return err
	})
}
