//go:build bdb

package bdb

import (
	"cmp"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// EnvOptions configure OpenEnv. The zero value is FORMAT.md's default for
// an existing writable environment.
type EnvOptions struct {
	// ReadOnly opens a private, cache-only environment in process memory
	// that writes nothing to the directory (see the package doc); databases
	// are then opened DB_RDONLY and transactions have no isolation.
	ReadOnly bool
	// CacheSize in bytes; 0 means kv.DefaultCacheSize (64 MiB).
	CacheSize int64
	// Repl, if set, opens a site of a replication group (DB_INIT_REP, no
	// environment-wide DB_MULTIVERSION: it panics replicas); see repl.go.
	Repl *ReplOptions
	// NoPrezero leaves the next log file to libdb (see prezeroer), which
	// a writable environment otherwise writes ahead.
	NoPrezero bool
	// Logger receives the environment's warnings; nil means slog.Default.
	Logger *slog.Logger
}

// Env is an open Berkeley DB environment: a directory of databases sharing
// a cache, a log and a lock table. It is safe for concurrent use. Close it
// once; later calls return ErrClosed.
type Env struct {
	dir      string
	readOnly bool

	// inflight counts calls on the environment or on DBs outside any Txn;
	// Close waits for it to reach zero after setting closing.
	inflight atomic.Int64
	closing  atomic.Bool

	mu     sync.Mutex // guards the fields below
	env    *libdb.Env // nil after Close
	closed bool
	txns   map[*Txn]struct{}
	dbs    map[*DB]struct{}

	repl    *replState  // nil unless replicated
	prezero *prezeroer  // nil if read-only or NoPrezero
	room    *roomKeeper // nil if read-only

	log *slog.Logger
	// spreadPages counts the pages written ahead of checkpoints
	// (spreadWrites).
	spreadPages atomic.Uint64
}

// OpenEnv opens the environment in dir, which must exist, creating its
// region and log files as needed, with DB_CREATE | DB_INIT_TXN |
// DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER,
// DB_LOCK_DEFAULT detection and DB_MULTIVERSION. A writable open runs
// normal recovery every time, rebuilding the regions, so the caller must
// hold the directory lock (see LockDir): OpenEnv takes no flock itself.
// With EnvOptions.Repl it opens a replication site instead: DB_INIT_REP
// added, DB_MULTIVERSION left out, repmgr started (see repl.go).
func OpenEnv(dir string, opts EnvOptions) (*Env, error) {
	le, err := libdb.EnvCreate()
	if err != nil {
		return nil, wrap("create environment "+dir, err)
	}
	fail := func(what string, err error) (*Env, error) {
		e := envError(le, what+" "+dir, err)
		le.Close(0)
		return nil, e
	}
	cache := opts.CacheSize
	if cache <= 0 {
		cache = kv.DefaultCacheSize
	}
	if err := le.SetCacheSize(cache, 1); err != nil {
		return fail("set cache size of", err)
	}
	var flags uint32
	if opts.ReadOnly && opts.Repl != nil {
		return fail("open read-only replicated", errf("replication needs a writable environment"))
	}
	if opts.ReadOnly {
		flags = libdb.Create | libdb.Private | libdb.InitMpool | libdb.Thread
	} else {
		if err := le.SetLkDetect(libdb.LockDefault); err != nil {
			return fail("set deadlock detection of", err)
		}
		// The lock table: 100000 locks, 10000 lockers, 100000 objects;
		// 1024 concurrently active transactions.
		if err := le.SetLkMax(100000, 10000, 100000); err != nil {
			return fail("size lock table of", err)
		}
		if err := le.SetTxMax(1024); err != nil {
			return fail("size transaction table of", err)
		}
		// The region files (cache, locks, log buffer) are memory-mapped.
		// libdb creates them sparse unless DB_REGION_INIT, and a first
		// touch of a page whose block the file system cannot allocate (a
		// full disk) is SIGBUS: the process dies inside libdb. Written in
		// full when created (every writable open: recovery recreates
		// them), a full disk fails the open with ENOSPC instead, and the
		// space is held from then on.
		if err := le.SetFlags(libdb.RegionInit, true); err != nil {
			return fail("set DB_REGION_INIT on", err)
		}
		if opts.Repl == nil {
			if err := le.SetFlags(libdb.Multiversion, true); err != nil {
				return fail("set DB_MULTIVERSION on", err)
			}
		}
		// DB_RECOVER needs DB_CREATE: recovery rebuilds the regions. Whether
		// database files may be created is DBOptions.Create's business.
		// Recovery runs on every writable open, decided by nobody's memory:
		// not DB_REGISTER's, which forgets a dead registrant once a recovery
		// attempt failed, so the next open would skip recovery and serve
		// files that lack committed transactions. After a clean close the
		// last checkpoint ends the log and recovery has nothing to replay.
		flags = libdb.Create | libdb.InitTxn | libdb.InitLog | libdb.InitLock |
			libdb.InitMpool | libdb.Thread | libdb.Recover
	}
	var rs *replState
	if opts.Repl != nil {
		var err error
		if rs, err = newReplState(le, *opts.Repl); err != nil {
			return fail("configure replication of", err)
		}
		flags |= libdb.InitRep
	}
	if !opts.ReadOnly {
		if err := checkRegionRoom(dir, cache); err != nil {
			le.Close(0)
			return nil, err
		}
	}
	if !opts.ReadOnly && opts.Repl == nil {
		if err := guardLogEnd(dir); err != nil {
			le.Close(0)
			return nil, err
		}
	}
	if !opts.ReadOnly && !replInitPending(dir) {
		// Before libdb opens the log: nothing in this process writes it
		// yet, and the caller holds the directory lock.
		removeStrayBelow(dir, cmp.Or(opts.Logger, slog.Default()))
	}
	if err := le.Open(dir, flags, 0); err != nil {
		defer rs.free() // after fail closed le
		_, err := fail("open environment", err)
		if !opts.ReadOnly {
			err = withUnwritable(dir, err)
		}
		return nil, err
	}
	e := &Env{
		dir:      dir,
		readOnly: opts.ReadOnly,
		env:      le,
		txns:     make(map[*Txn]struct{}),
		dbs:      make(map[*DB]struct{}),
		repl:     rs,
		log:      opts.Logger,
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if rs != nil {
		if err := rs.start(); err != nil {
			rs.stop()
			defer rs.free()
			return fail("start replication of", err)
		}
	}
	if !opts.ReadOnly && !opts.NoPrezero {
		e.prezero = startPrezero(dir, e.logFile, e.log)
	}
	if !opts.ReadOnly {
		e.room = startRoom(dir, e.logicalEnds, e.log)
	}
	return e, nil
}

// logFile returns the number of the log file libdb writes and the size
// of a log file (prezeroer's stat).
func (e *Env) logFile() (cur, size uint32, err error) {
	if err := e.enter(); err != nil {
		return 0, 0, err
	}
	defer e.leave()
	st, err := e.env.LogStat()
	if err != nil {
		return 0, 0, wrap("log stat of "+e.dir, err)
	}
	return st.CurFile, st.FileSize, nil
}

// logicalEnds returns, by file name, where each open database file ends
// in the cache's view (the page after its last, created pages not yet
// written included), for roomKeeper. Holding e.mu keeps DB.Close from
// closing a handle it asks.
func (e *Env) logicalEnds() map[string]int64 {
	if err := e.enter(); err != nil {
		return nil
	}
	defer e.leave()
	e.mu.Lock()
	defer e.mu.Unlock()
	ends := make(map[string]int64, len(e.dbs))
	for d := range e.dbs {
		h, err := d.handle()
		if err != nil {
			continue
		}
		last, err := h.LastPage()
		if err != nil {
			continue
		}
		ps, err := h.PageSize()
		if err != nil {
			continue
		}
		name := filepath.Base(d.file)
		ends[name] = max(ends[name], (int64(last)+1)*int64(ps))
	}
	return ends
}

// RoomFor makes sure, before about n bytes are committed, that every
// database file has room allocated past its end (see roomKeeper.Reserve)
// and that the next log file could be written ahead (prezeroer); it
// returns an error wrapping kv.ErrNoSpace naming the file a full file
// system denied.
func (e *Env) RoomFor(n int64) error {
	if err := e.prezero.noRoom(); err != nil {
		return err
	}
	return e.room.Reserve(n)
}

// LogsWrittenAhead returns how many log files were written with zeros
// ahead of libdb's switch to them since open (see prezeroer).
func (e *Env) LogsWrittenAhead() uint64 {
	if e.prezero == nil {
		return 0
	}
	return e.prezero.made.Load()
}

// Dir returns the environment directory.
func (e *Env) Dir() string { return e.dir }

// ReadOnly reports whether the environment was opened read-only.
func (e *Env) ReadOnly() bool { return e.readOnly }

// enter registers a call outside any Txn; it fails once Close has begun.
// Every successful enter is paired with leave.
func (e *Env) enter() error {
	e.inflight.Add(1)
	if e.closing.Load() {
		e.inflight.Add(-1)
		return ErrClosed
	}
	return nil
}

func (e *Env) leave() { e.inflight.Add(-1) }

// LastError returns libdb's last diagnostic message for this environment,
// which often explains an error better than its code, or "".
func (e *Env) LastError() string {
	if err := e.enter(); err != nil {
		return ""
	}
	defer e.leave()
	return e.env.LastError()
}

// Flush writes and syncs the log, making every transaction committed
// before the call durable. See DB_ENV->log_flush.
func (e *Env) Flush() error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if e.readOnly {
		return nil
	}
	if err := e.env.LogFlush(); err != nil {
		return wrap("flush log of "+e.dir, err)
	}
	return nil
}

// Checkpoint flushes dirty pages and writes a checkpoint record (forced,
// even if nothing changed since the last one). See DB_ENV->txn_checkpoint.
func (e *Env) Checkpoint() error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if e.readOnly {
		return opErr("checkpoint "+e.dir, ErrReadOnly, nil)
	}
	pages, _, err := e.spreadWrites()
	e.spreadPages.Add(uint64(pages))
	if err != nil {
		// Only the spreading failed: the checkpoint still writes and
		// syncs everything itself, and reports what fails there.
		e.log.Warn("bdb: writing a checkpoint's pages ahead failed; the checkpoint writes them at once", "dir", e.dir, "err", err)
	}
	if err := e.env.TxnCheckpoint(0, 0, libdb.Force); err != nil {
		return wrap("checkpoint "+e.dir, err)
	}
	return nil
}

// RemoveLogs removes the log files no longer needed for normal recovery.
// See DB_ENV->log_archive with DB_ARCH_REMOVE.
func (e *Env) RemoveLogs() error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if e.readOnly {
		return opErr("remove logs of "+e.dir, ErrReadOnly, nil)
	}
	_, err := e.env.LogArchive(libdb.ArchRemove)
	return wrap("remove logs of "+e.dir, err)
}

// LogFiles lists log file names relative to the directory: all of them
// when all is set, else those no longer needed for normal recovery. See
// DB_ENV->log_archive.
func (e *Env) LogFiles(all bool) ([]string, error) {
	if err := e.enter(); err != nil {
		return nil, err
	}
	defer e.leave()
	if e.readOnly {
		return nil, opErr("list logs of "+e.dir, ErrReadOnly, nil)
	}
	var flags uint32
	if all {
		flags = libdb.ArchLog
	}
	l, err := e.env.LogArchive(flags)
	return l, wrap("list logs of "+e.dir, err)
}

// Panic puts the environment, shared by every process that has it open,
// into libdb's panic state (DB_PANIC_ENVIRONMENT): each later call of
// every process fails with DB_RUNRECOVERY (ErrRunRecovery) until the
// environment is recovered. It is the way to stop every user of an
// environment at once, and what the fatal-error tests inject.
func (e *Env) Panic() error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if err := e.env.SetFlags(libdb.PanicEnv, true); err != nil {
		return wrap("panic environment "+e.dir, err)
	}
	return nil
}

// Verify checks the structure of a database file of the directory that is
// not open in this process. See DB->verify.
func (e *Env) Verify(file string) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if err := e.env.Verify(file, 0); err != nil {
		return e.dataErr("verify "+file+" in "+e.dir, err)
	}
	return nil
}

// Stats are the environment's transaction, log and cache statistics
// (zero for subsystems a read-only environment does not have).
type Stats struct {
	Txn   libdb.TxnStat
	Log   libdb.LogStat
	Mpool libdb.MpoolStat
}

// Stats returns environment statistics. See DB_ENV->txn_stat, log_stat,
// memp_stat.
func (e *Env) Stats() (Stats, error) {
	if err := e.enter(); err != nil {
		return Stats{}, err
	}
	defer e.leave()
	var s Stats
	var err error
	if !e.readOnly {
		if s.Txn, err = e.env.TxnStat(); err != nil {
			return s, wrap("stat "+e.dir, err)
		}
		if s.Log, err = e.env.LogStat(); err != nil {
			return s, wrap("stat "+e.dir, err)
		}
	}
	if s.Mpool, err = e.env.MpoolStat(); err != nil {
		return s, wrap("stat "+e.dir, err)
	}
	return s, nil
}

// Close aborts every transaction still open (waiting for a call in progress
// on it to return), closes every DB, then the environment. A second Close
// returns nil. See DB_ENV->close.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.closing.Store(true)
	e.mu.Unlock()
	e.prezero.stop()
	e.room.stop()
	e.repl.stop()
	defer e.repl.free()

	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	// Abort open transactions. A Txn whose mutex is held is in a call
	// (maybe waiting for a lock held by another open Txn): abort the
	// others first and come back to it.
	for {
		e.mu.Lock()
		open := make([]*Txn, 0, len(e.txns))
		for t := range e.txns {
			open = append(open, t)
		}
		e.mu.Unlock()
		if len(open) == 0 {
			break
		}
		for _, t := range open {
			if t.mu.TryLock() {
				if !t.done {
					keep(t.endLocked(false, 0, true))
				}
				t.mu.Unlock()
			}
		}
		time.Sleep(time.Millisecond)
	}
	for e.inflight.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	if !e.readOnly && e.env != nil {
		// Everything committed reaches the log file even if a later step
		// of the close fails.
		keep(wrap("flush log of "+e.dir, e.env.LogFlush()))
	}
	e.mu.Lock()
	dbs := make([]*DB, 0, len(e.dbs))
	for d := range e.dbs {
		dbs = append(dbs, d)
	}
	e.dbs = nil
	le := e.env
	e.env = nil
	e.mu.Unlock()
	for _, d := range dbs {
		keep(d.closeHandle())
	}
	if le != nil {
		keep(wrap("close environment "+e.dir, le.Close(0)))
	}
	return first
}
