// Package recovery is durusbdb's crash recovery, hot backup / restore and
// upgrade tooling, over both backends.
//
// # Recovery
//
// Berkeley DB: every writable open runs normal recovery when it is needed
// (DB_RECOVER | DB_REGISTER, FORMAT.md §1). AtOpen runs that recovery
// itself just before the engine opens the directory, with libdb's verbose
// recovery messages captured, and reports through slog what it did: the
// log range replayed ("Recovery starting from [1][28]" to the end of the
// log), the checkpoint it wrote and the time taken, or that the last owner
// exited cleanly and nothing was replayed. Recover (command `durusbdb
// recover`) runs normal or, with Catastrophic, DB_RECOVER_FATAL recovery:
// every log file in the directory is replayed from the first, which is
// what a restored backup or a directory with damaged database files and
// archived logs needs. Both hold the directory lock (durusbdb.lock), so
// they refuse to run while a server owns the directory. CheckSyncFinished
// (replinit.go) refuses, for `durusbdb recover` and a standalone serve, a
// replication site stopped during libdb's internal init: only rejoining
// its group completes such a directory.
//
// LevelDB has no log to replay beyond its own: its open always replays the
// write-ahead log. Recover runs LevelDB's RepairDatabase (levigo), which
// rebuilds the MANIFEST from every table file it can read and moves files
// it cannot into lost/; the report lists the files before and after and
// what went to lost/. Run `durusbdb check --repair` afterwards: a repair
// can drop records, which the engine's counters do not know about.
//
// # Hot backup (Berkeley DB)
//
// A running server owns the directory: it holds the exclusive flock on
// durusbdb.lock and the libdb environment. Backup does not need the flock.
// It joins the environment (bdb.JoinEnv: the same region files, opened
// with DB_REGISTER but without DB_RECOVER, as a second process of the
// environment, which Berkeley DB supports) and then follows libdb's hot
// backup procedure:
//
//  1. open every log file present (keeping the descriptors) and keep
//     watching the directory for new ones;
//  2. copy each database file with DB_ENV->dbbackup, which reads pages in
//     coordination with the shared cache so no page is copied while it is
//     being written; the copy is fuzzy (pages may be older than the log);
//  3. flush the log, then copy every log file held, from the first to the
//     last, which now covers every change the page copies may lack.
//
// Restore then runs catastrophic recovery, which replays these logs over
// the page copies. The server removes log files after its checkpoints;
// a log file removed after step 1 is still read through its open
// descriptor, so removal cannot punch a hole in the copied log. (A log
// file removed before step 1 held only changes that the checkpoint before
// its removal had written to the database files, hence to the copies.) If
// the held log files are not contiguous, which needs a log file to be
// created and removed within one directory poll, Backup fails rather than
// write an incomplete backup. Every commit acknowledged before Backup
// started is in the log (commits are acknowledged after the log flush), so
// it is in the restored database.
//
// Without a server (the flock is free), Backup takes the flock, opens the
// environment normally (recovery if needed) and copies the same way.
//
// IMPORTANT: a backup joined to a server's environment is a process of that
// environment. Stop it with SIGINT/SIGTERM (checked between files), never
// SIGKILL: a process killed inside libdb can leave a mutex of the shared
// regions held and stall the server. A backup that dies anyway stays
// registered in __db.register: the server keeps running, later backups are
// refused (the environment "needs recovery"), and the next server start
// runs recovery.
//
// # Backup (LevelDB)
//
// LevelDB allows one process per database, so nothing can join a running
// server's database: Backup of a LevelDB directory takes the directory lock
// and fails (kv.ErrInUse, ErrLevelDBInUse) while a server runs. Stop the
// server, back up, start it again. With the lock held the database is
// closed, so copying CURRENT, MANIFEST-*, the table files and the log is
// consistent; LOCK and LOG are not copied.
//
// # Output
//
// A backup is a directory, or with Stream one file: a tar archive whose
// first member is MANIFEST (see Manifest) and then every file it lists,
// compressed with the snappy framing format plus durusbdb's end marker
// (package internal/stream, FORMAT.md §8). Restore checks the whole input
// against MANIFEST (every file present, sizes and SHA-256 sums, nothing
// extra) before it creates or writes anything, writes into a new or empty
// directory, syncs, and for Berkeley DB runs catastrophic recovery there.
//
// # Upgrade
//
// Upgrade (command `durusbdb upgrade`) applies libdb's upgrade procedure to
// a directory written by an older Berkeley DB (FORMAT.md §7): it refuses a
// directory in use or not shut down cleanly, copies the whole directory
// aside first, upgrades each database file in place (DB->upgrade) and,
// when the log files are from an older release, removes them and the old
// region files and resets the LSNs of the database files
// (DB_ENV->lsn_reset). On a directory already in Berkeley DB 5.3 format it
// makes the copy and changes nothing else.
//
// # Imports
//
// STYLE.md §1 says recovery imports kv, never a backend. This package
// departs from that on purpose: backup, catastrophic recovery and upgrade
// are libdb and LevelDB procedures, not kv operations, so the Berkeley DB
// parts (files with build tag bdb) call package bdb and the LevelDB parts
// call levigo. Without the bdb tag, Berkeley DB directories fail with
// backend.ErrNotCompiled.
package recovery
