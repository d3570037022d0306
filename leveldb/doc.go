// Package leveldb is the LevelDB backend of durusbdb: it implements kv.Store
// over one LevelDB database (through github.com/jmhodges/levigo and the
// system libleveldb 1.23) in the FORMAT.md §5 layout.
//
// # Layout
//
// One LevelDB database lives in the directory (CURRENT, MANIFEST-*, *.ldb,
// *.log, LOCK, LOG). Every bucket is a key range: the stored key is the
// bucket's one-byte Prefix followed by the caller's key, so bytewise order
// within a bucket is LevelDB's order. BucketSpec.Hash, File and PageSize are
// ignored (LevelDB has one access method). At creation the meta key
// `m` ‖ "backend" is set to "leveldb" (visible in the "meta" bucket as key
// "backend").
//
// Options, fixed in OpenStore: snappy block compression on
// (levigo.SnappyCompression; Debian's libleveldb1d links libsnappy, so the
// setting is effective, and a test checks that compressible data shrinks on
// disk), an LRU block cache of Options.CacheSize bytes, a 10-bit bloom
// filter, paranoid_checks on, and checksum verification on every read.
//
// # Transactions
//
// LevelDB has no transactions and no multi-writer isolation; this package
// builds them:
//
//   - Writers are serialized: Begin(ctx, true) takes the store's writer slot
//     and holds it until Commit or Abort (it waits for the slot, honouring
//     ctx). A write transaction therefore never conflicts, never returns
//     kv.ErrConflict, and must be kept short. IMPORTANT: a goroutine that
//     holds a write transaction must not begin another one (kv.Update inside
//     kv.Update): it would wait for itself until its ctx ends.
//   - Writes are buffered in the transaction (an ordered overlay), so the
//     transaction reads its own writes: Get looks in the overlay first, and a
//     Cursor merges the overlay with a snapshot iterator. Other transactions
//     never see the overlay.
//   - Commit writes the overlay as one WriteBatch, which LevelDB applies
//     atomically (one log record). kv.Sync sets WriteOptions.sync, which
//     fdatasyncs the log before Commit returns. kv.WriteNoSync and kv.NoSync
//     are the same here: LevelDB writes each batch to its log with write(2)
//     before returning, so both survive a process crash but not a power loss
//     or kernel crash; LevelDB has nothing that keeps a commit in process
//     memory only.
//   - A read-only transaction reads a LevelDB snapshot taken at Begin: it
//     sees every commit that returned before Begin and none after, and it
//     never blocks or is blocked by writers.
//
// # Durability: Flush and the rotated-log gap
//
// Flush writes an empty WriteBatch with sync set. In libleveldb 1.23
// DBImpl::Write appends even an empty batch to the current log as a record
// and then calls logfile_->Sync() (fdatasync), so every earlier record in the
// current log is on disk when Flush returns.
//
// That alone is not enough: when the memtable fills, LevelDB switches to a
// new log file and deletes (closes, without fsync) the old one, whose
// records become durable only when the background compaction of that
// memtable has written and synced its table file. A synced write to the new
// log does not sync the old one, and LevelDB never fsyncs the directory
// after creating a log file. So Flush, and Commit with kv.Sync, also fsync
// every older *.log file still present and, when the set of log files
// changed, the directory itself. To keep that cheap the directory is listed
// only when its modification time says it may have changed (see logSyncer in
// durable.go). TestFlushAfterRotation shows the gap is real: under a steady
// write load, rotated logs are still present when Flush runs.
//
// Flush skips the synced write when no commit was written without sync since
// the last Flush. Close flushes too: LevelDB's own close does not sync its
// log, so without it a clean Close would leave the last non-sync commits
// exposed to a power loss.
//
// Checkpoint is Flush: LevelDB has no checkpoint; its compactions run in the
// background and its old logs are deleted by LevelDB itself, so removeLogs
// has nothing to do.
//
// # Read-only opens
//
// LevelDB has no read-only mode: opening replays its log into new files and
// rewrites CURRENT and MANIFEST. So with Options.ReadOnly LevelDB opens a
// private copy of the directory in a temporary directory (table files
// hard-linked, the small mutable files copied; removed on Close and on
// every failed open), nothing is written in the directory itself, and this
// package refuses every write: a writable Begin returns kv.ErrReadOnly, and
// the backend marker is not written. It takes the directory lock too
// (exclusively, without creating the lock file), so a read-only open fails
// with kv.ErrInUse while another process has the database open.
//
// # Locking
//
// LevelDB locks its LOCK file with fcntl(F_SETLK), and such locks belong to
// the process: closing any descriptor of LOCK anywhere in the process
// releases them. libleveldb 1.23 itself does that when a second DB::Open of
// the same directory in the same process fails. So OpenStore first takes the
// directory lock of package dirlock, shared with the Berkeley DB backend
// (flocks on durusbdb.lock and on the directory, held until Close), which
// makes a second OpenStore in this process, or in another durusbdb
// process, fail with kv.ErrInUse before LevelDB touches LOCK. (The
// previous release flocked only the directory; dirlock still takes that
// flock, so a process of that release and one of this exclude each
// other.) IMPORTANT: code in the same process must
// never open and close DIR/LOCK while a Store is open (a backup that copies
// the directory must skip LOCK), or another process could then open the
// database concurrently.
//
// # Errors
//
// levigo returns errors as strings; they are mapped to kv sentinels:
// "Corruption: ..." and an I/O error on a table file (missing, or truncated:
// LevelDB mmaps tables and a read past the end gives EINVAL) → kv.ErrCorrupt,
// and the message then names the damaged files and offsets, found by Verify
// (LevelDB's own corruption messages name no file); a held lock →
// kv.ErrInUse; ENOSPC → kv.ErrNoSpace. Nothing in this package panics on bad
// data.
//
// # Concurrency and lifetimes
//
// A Store is safe for concurrent use. A Txn and its cursors belong to one
// goroutine at a time; cursors must be closed before their transaction ends
// (they are closed by it otherwise). Close ends every open transaction
// (aborting writes) and releases its iterators and snapshots before closing
// the database; afterwards those transactions return kv.ErrClosed.
package leveldb
