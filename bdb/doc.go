// Package bdb is durusbdb's Berkeley DB backend: an idiomatic Go layer over
// the libdb binding (package cgo/libdb) and the kv.Store implementation the
// engine uses. It is compiled only with the build tag "bdb"; without the tag
// the package is empty.
//
// # Two levels
//
// Env, DB, Txn and Cursor wrap libdb handles with ownership, sentinel errors
// and safe shutdown, for tools (stats, verify, backup) that need libdb
// itself. OpenStore builds a kv.Store on them: one environment in the
// directory, one database file per kv.BucketSpec, as FORMAT.md §1 lays out.
//
// # Environment defaults (FORMAT.md §1, §6)
//
// A writable open uses DB_CREATE | DB_INIT_TXN | DB_INIT_LOG |
// DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD | DB_RECOVER, so normal
// recovery runs on every writable open (from the last checkpoint, which
// ends the log after a clean close, so it costs nothing then). It does not
// use DB_REGISTER: libdb forgets a dead registrant once a recovery attempt
// failed, and a second attempt would then skip recovery. Whether the last
// writer closed cleanly is kept in durusbdb.lock instead (NeedsRecovery);
// deadlock detection on every conflict (DB_LOCK_DEFAULT); a 64 MiB cache
// unless told otherwise; logs are never removed automatically (only
// Store.Checkpoint(ctx, true) or Env.RemoveLogs remove them). The
// environment also sets DB_MULTIVERSION so that read transactions can use
// snapshot isolation (below).
//
// # Replication
//
// EnvOptions.Repl opens the environment as a site of a Berkeley DB
// Replication Manager group (repl.go, docs/REPLICATION.md): DB_INIT_REP
// added, and no DB_MULTIVERSION, which panics replicas, so that snapshot
// transactions are locking reads there. Only the master writes (a write on
// a replica fails with ErrNotMaster); a commit too few replicas
// acknowledged returns ErrPermFailed although libdb committed it locally;
// Env.ReplStatus follows the role from repmgr's events; commit tokens
// (Txn.CommitToken, Env.TxnApplied) give read-your-writes on another site.
// Env.Group and Env.RemoveDeadSite (repl_remove.go) show the group's
// membership and remove a dead member for good (`durusbdb repl`). A site
// stopped during its internal init (libdb's __db.rep.init) is left to
// libdb's replication-aware open, which copies the databases again.
//
// # Transactions and isolation
//
// Write transactions (Store.Begin(ctx, true)) are ordinary serializable
// libdb transactions with page-level two-phase locking. Txn.Get in a write
// transaction reads with DB_RMW (a write lock), so two writers that read and
// then update the same record queue behind each other instead of
// deadlocking on a lock upgrade. Deadlocks that remain are broken by the
// detector; the victim gets an error wrapping ErrDeadlock and
// kv.ErrConflict, and nothing of it is applied: retry it (kv.Update does).
//
// Read transactions (Store.Begin(ctx, false)) are DB_TXN_SNAPSHOT
// transactions over multiversion (DB_MULTIVERSION) databases: they see the
// data committed when they began, take no read locks, so they never wait
// for a writer, never deadlock and never make a writer wait; they never see
// uncommitted data. The price is that writers copy a page the first time
// they change it while an older snapshot may still need it, and a long
// reader keeps old page versions in the cache (libdb spills them to
// "freezer" files when the cache is full). Cursors of read transactions
// read ahead: Cursor.Next fetches a batch of records with one libdb call
// (DB_MULTIPLE_KEY into a 128 KiB buffer), which the unchanging snapshot
// makes safe; Prev, Seek, First and Last leave the batch.
//
// # Read-only open
//
// A Berkeley DB environment cannot be joined without writing: its region
// files (__db.00N) are shared memory that every process updates, and
// recovery writes files too. So Options.ReadOnly does not join the
// environment. It opens a private environment (DB_PRIVATE, cache
// only, in process memory) and every database with DB_RDONLY, without
// transactions, locking or logging, and creates no file in the directory.
// It takes the directory lock shared (package dirlock: durusbdb.lock when
// that file exists, and the directory), so it fails with kv.ErrInUse while
// a writer owns the directory and a writer fails while a reader is open. It reads the database files, which hold
// every committed transaction only after a clean close or a recovery. So
// when the last writer did not close cleanly (NeedsRecovery), a read-only
// open first runs normal recovery itself if the directory is writable and
// no other process holds it, and otherwise refuses with an error wrapping
// kv.ErrNeedRecover that names `durusbdb recover`: no read-only view ever
// shows data older than the last acknowledged commit. Read
// transactions of a read-only store see no writer, hence are trivially
// consistent.
//
// # Lifetimes and goroutines
//
// Env and DB are safe for concurrent use (DB_THREAD). A Txn and its Cursors
// belong to one goroutine at a time; every Txn call takes the Txn's mutex,
// which is what lets Env.Close abort a transaction another goroutine left
// open without freeing it under that goroutine's feet.
//
// Close cursors before their transaction ends; Commit and Abort close any
// still open (a cursor used after that returns ErrTxnDone). End
// transactions before closing the environment; Env.Close (and Store.Close)
// aborts those still open, waiting for any call in progress on them to
// return. A call blocked on a lock held by another open transaction is
// released when Close aborts that transaction. Close closes every DB, then
// the environment. Close twice returns nil; every other call after Close
// returns ErrClosed.
//
// A lock wait blocks its OS thread inside libdb and cannot be interrupted
// by a context; deadlock detection bounds it. Contexts are checked between
// libdb calls.
//
// # Errors
//
// Every error names the operation and the file or directory, and wraps
// both a sentinel of this package and the *libdb.Error. The sentinels that
// have a kv counterpart also match it with errors.Is: ErrNotFound is
// kv.ErrNotFound, ErrDeadlock and ErrLockNotGranted are kv.ErrConflict,
// ErrRunRecovery is kv.ErrNeedRecover, ErrClosed is kv.ErrClosed,
// ErrTxnDone is kv.ErrTxnDone, ErrReadOnly is kv.ErrReadOnly; ENOSPC and EDQUOT are
// kv.ErrNoSpace and DB_VERIFY_BAD / DB_PAGE_NOTFOUND are kv.ErrCorrupt.
// Replication adds ErrPermFailed, ErrNotMaster (also kv.ErrReadOnly),
// ErrHandleDead (DB_REP_HANDLE_DEAD: reopen every handle, Store.Reopen), ErrRepUnavail
// (DB_REP_UNAVAIL, DB_REP_LOCKOUT) and ErrTimeout (DB_TIMEOUT).
package bdb
