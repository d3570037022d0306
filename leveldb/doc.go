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
//     atomically (one log record), always without sync: LevelDB hands each
//     batch to its log with write(2) before returning, so every commit
//     survives a process crash. The batch also carries the commit's marker,
//     and the same operations are queued as a redo record (below). With
//     kv.Sync, Commit then flushes; kv.WriteNoSync and kv.NoSync return at
//     once.
//   - A read-only transaction reads a LevelDB snapshot taken at Begin: it
//     sees every commit that returned before Begin and none after, and it
//     never blocks or is blocked by writers.
//
// # Durability: the redo log
//
// LevelDB's way to make a write durable is a synced write, which
// fdatasyncs its current log. That log grows with every record, and an
// fdatasync that changes a file's size also writes the inode through the
// filesystem's journal: on this project's ext4 machines 179–219 µs against
// 105–135 µs for the same write over a preallocated file
// (docs/PERFORMANCE.md). So durability goes through a file of our own,
// durusbdb.wal (wal.go, redo.go, FORMAT.md §5): preallocated with zeros
// and written over in place as a ring. Each commit's operations are queued
// as a record once LevelDB has the batch; Flush writes the queued records
// with one pwrite (two at the ring's wrap) and one fdatasync, so a group of
// commits costs one fdatasync that journals nothing.
//
// Checkpoints let the ring be reused: a background goroutine (every 200
// ms, or at once when a Flush finds the ring a quarter full) notes the
// last record written, fsyncs LevelDB's log files (the current one, every
// older one still present: LevelDB closes a rotated log without fsync and
// its records are durable only once the memtable's table is) and the
// directory, then writes a header that starts the ring after that record.
// A Flush that finds no room checkpoints itself; so does one after a
// commit too big for half the ring, or after records were dropped because
// a nosync store queued more than that between Flushes. Checkpoint and
// Close do a full checkpoint (the ring left empty, every marker deleted).
//
// Recovery at open: LevelDB recovers what its files hold, which after a
// power loss can be any prefix of each log file: an acknowledged commit
// may be missing, and a later unacknowledged one present. Every commit's
// batch carries a marker (key `\x00` ‖ seq → the keys it wrote), so the
// replay applies each record whose marker is missing, except for the keys
// a later present commit wrote, then syncs LevelDB, starts a new epoch of
// the ring (records of earlier epochs are never read again) and deletes
// the markers. A commit too big for the queue gets no record, and no
// marker either when the ring holds no record (nothing a replay could
// write over it): a bulk import's batches carry none, since a key at the
// start of the key space in every batch makes every table LevelDB writes
// overlap every other and its compactions rewrite everything. A record is acknowledged only after the fdatasync that
// follows its write, and the reader stops at the first record that is
// torn, of another epoch or out of sequence, so every acknowledged record
// is read.
//
// Flush skips everything when no commit was written since the last Flush.
// A read-only open replays the redo log into its private copy (below) and
// writes nothing in the directory.
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
// kv.ErrInUse; ENOSPC and EDQUOT → kv.ErrNoSpace, whatever the file;
// EACCES, EPERM and EMFILE are no damage either (no sentinel). Nothing in
// this package panics on bad data.
//
// # Concurrency and lifetimes
//
// A Store is safe for concurrent use. A Txn and its cursors belong to one
// goroutine at a time; cursors must be closed before their transaction ends
// (they are closed by it otherwise). Close ends every open transaction
// (aborting writes) and releases its iterators and snapshots before closing
// the database; afterwards those transactions return kv.ErrClosed.
package leveldb
