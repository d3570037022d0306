package leveldb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/jmhodges/levigo"

	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/dirlock"
	"github.com/durusbdb/durusbdb/internal/staging"
	"github.com/durusbdb/durusbdb/kv"
)

// BackendName is what Store.Backend returns and what the meta key
// `m` ‖ "backend" holds.
const BackendName = "leveldb"

// backendKey is the full LevelDB key of the backend marker (FORMAT.md §5).
// It always uses prefix 'm', whatever the caller's bucket set says.
var backendKey = []byte("mbackend")

// Store is an open LevelDB database implementing kv.Store. See the package
// documentation for the transaction model. Close it once; later calls
// return nil.
type Store struct {
	dir      string
	readOnly bool
	logger   *slog.Logger
	prefixes map[string]byte // bucket name → key prefix

	dirLock  *dirlock.Lock // held while open (see lockDir)
	roCopy   *staging.Dir  // read-only opens: the private copy LevelDB opens (removed on Close)
	db       *levigo.DB
	opts     *levigo.Options
	cache    *levigo.Cache
	filter   *levigo.FilterPolicy
	wSync    *levigo.WriteOptions
	wNoSync  *levigo.WriteOptions
	commitWB *levigo.WriteBatch // reused by Commit; owned by the holder of the writer slot
	roMu     sync.Mutex
	roFree   []*levigo.ReadOptions // idle read options (checksums on), reused by transactions
	flushMu  sync.Mutex
	// written counts commits written to LevelDB; flushed is the value of
	// written covered by the last completed Flush. Flush does nothing when
	// they are equal.
	written  atomic.Uint64
	flushed  atomic.Uint64
	paranoid bool
	logSync  logSyncer

	// The redo log (redo.go, wal.go); nil on a read-only store.
	wal      *walFile // guarded by flushMu
	walEpoch uint64   // the ring's epoch since this open
	nextSeq  uint64   // seq of the next commit; the writer slot's holder only
	recBuf   []byte   // a commit's redo payload; the writer slot's holder only
	keysBuf  []byte   // a commit's marker value; the writer slot's holder only
	// walMu guards the queue of redo records written to LevelDB but not
	// yet to the redo log, in seq order, and walLast, the seq of the last
	// commit written to LevelDB. walGap says the queue was dropped: the
	// next flush checkpoints instead.
	walMu                   sync.Mutex
	walRecs, walRecsSpare   []byte
	walEnds, walEndsSpare   []int
	walGap                  bool
	walLast                 uint64
	markMu                  sync.Mutex // guards marked and markersBelow
	marked                  []uint64   // seqs of the markers in LevelDB not yet deleted, ascending
	markersBelow            uint64     // markers below this seq are deleted
	bgQuit, bgDone          chan struct{}
	bgKick                  chan struct{}
	bgOnce                  sync.Once
	walFulls, bgCheckpoints atomic.Uint64 // for tests and stats
	corruptMu               sync.Mutex
	corrupt                 string // cached description of damaged table files, once found

	// closeMu is held for reading by every call that touches the C handles
	// and for writing by Close, so Close never frees a handle in use.
	closeMu sync.RWMutex
	closed  atomic.Bool   // set under closeMu (write), read anywhere
	closing chan struct{} // closed by Close: wakes writers waiting in Begin

	// writer is the writer slot: a write txn holds its one token from
	// Begin until Commit/Abort (or Close).
	writer chan struct{}

	txnMu sync.Mutex
	txns  map[*txn]struct{} // open transactions, ended by Close
}

var _ kv.Store = (*Store)(nil)

// OpenStore opens (or, in an empty directory with opts.Create, creates) the
// LevelDB database in opts.Dir.
//
// It refuses a directory holding meta.db (a Berkeley DB directory), an empty
// directory when opts.Create is false, and any other directory without a
// LevelDB CURRENT file; all these errors wrap kv.ErrNotDB and name the
// directory. A database held open by another process or another Store
// gives an error wrapping kv.ErrInUse.
func OpenStore(opts kv.Options) (*Store, error) {
	return openStore(opts, defaultRedoConfig())
}

func openStore(opts kv.Options, redo redoConfig) (_ *Store, err error) {
	s := &Store{
		dir:      opts.Dir,
		readOnly: opts.ReadOnly,
		logger:   opts.Logger,
		prefixes: map[string]byte{},
		closing:  make(chan struct{}),
		writer:   make(chan struct{}, 1),
		txns:     map[*txn]struct{}{},
		paranoid: true,
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if err := s.setBuckets(opts.Buckets); err != nil {
		return nil, err
	}
	// A directory this open refuses is refused before the lock, which
	// creates the lock file; detection runs again under the lock, so that
	// no other durusbdb process creates or opens the database between
	// detection and LevelDB's open.
	if _, err := detect(opts); err != nil {
		return nil, err
	}
	if err := s.lockDir(); err != nil {
		return nil, err
	}
	// Every failure from here on undoes what was done so far: the LevelDB
	// handle, the options, a read-only open's private copy, the lock.
	defer func() {
		if err == nil {
			return
		}
		s.stopCheckpoints()
		if s.wal != nil {
			s.wal.close()
			s.wal = nil
		}
		if s.db != nil {
			s.db.Close()
			s.db = nil
		}
		s.freeOptions()
		s.removeCopy()
		s.unlockDir()
	}()
	fresh, err := detect(opts)
	if err != nil {
		return nil, err
	}
	if m := missingFiles(s.dir); !fresh && len(m) > 0 {
		return nil, fmt.Errorf("leveldb: open %s: %s: restore the latest backup, or accept the loss with `durusbdb recover --dir %s` (a repair), then `durusbdb check --dir %s --repair`: %w", s.dir, strings.Join(m, "; "), s.dir, s.dir, kv.ErrCorrupt)
	}
	cacheSize := opts.CacheSize
	if cacheSize <= 0 {
		cacheSize = kv.DefaultCacheSize
	}
	s.newOptions(cacheSize, fresh)
	openDir := s.dir
	if s.readOnly {
		// LevelDB has no read-only mode: opening replays its log into new
		// files and rewrites CURRENT and MANIFEST. A read-only open must
		// write nothing (PROTOCOL.md §8), so LevelDB opens a private copy
		// (privateCopy): table files are immutable and hard-linked, the
		// small mutable files are copied.
		if s.roCopy, err = privateCopy(s.dir, s.logger); err != nil {
			return nil, err
		}
		openDir = s.roCopy.Path
	}
	db, err := levigo.Open(openDir, s.opts)
	if err != nil {
		err = s.mapError("open", err)
		if errors.Is(err, kv.ErrNoSpace) {
			err = fmt.Errorf("%w (opening replays LevelDB's log into a new table: free at least %d MiB on the file system of %s)", err, replayRoomMiB(openDir), openDir)
		}
		return nil, err
	}
	s.db = db
	if err := s.checkMarker(fresh); err != nil {
		return nil, err
	}
	s.logSync.dir = s.dir
	if err := s.logSync.init(); err != nil {
		return nil, fmt.Errorf("leveldb: open %s: %w", s.dir, err)
	}
	if err := s.openRedo(redo); err != nil {
		return nil, err
	}
	s.logger.Debug("leveldb: opened", "dir", s.dir, "created", fresh, "readonly", s.readOnly, "cache", cacheSize)
	return s, nil
}

// newOptions makes the store's LevelDB options (freed by freeOptions):
// an LRU block cache of cacheSize bytes, bloom filters, snappy, paranoid
// checks, creation exactly when fresh; the synced and unsynced write
// options and the two reused write batches.
func (s *Store) newOptions(cacheSize int64, fresh bool) {
	s.opts = levigo.NewOptions()
	s.cache = levigo.NewLRUCache(int(cacheSize))
	s.filter = levigo.NewBloomFilter(10)
	s.opts.SetCache(s.cache)
	s.opts.SetFilterPolicy(s.filter)
	s.opts.SetCompression(levigo.SnappyCompression)
	s.opts.SetParanoidChecks(s.paranoid)
	s.opts.SetCreateIfMissing(fresh)
	s.opts.SetErrorIfExists(fresh)
	s.wSync = levigo.NewWriteOptions()
	s.wSync.SetSync(true)
	s.wNoSync = levigo.NewWriteOptions()
	s.wNoSync.SetSync(false)
	s.commitWB = levigo.NewWriteBatch()
}

func (s *Store) setBuckets(specs []kv.BucketSpec) error {
	used := map[byte]string{}
	for _, b := range specs {
		if b.Name == "" {
			return fmt.Errorf("leveldb: open %s: bucket with an empty name", s.dir)
		}
		if _, dup := s.prefixes[b.Name]; dup {
			return fmt.Errorf("leveldb: open %s: bucket %q listed twice", s.dir, b.Name)
		}
		if other, dup := used[b.Prefix]; dup {
			return fmt.Errorf("leveldb: open %s: buckets %q and %q share prefix %q", s.dir, other, b.Name, b.Prefix)
		}
		used[b.Prefix] = b.Name
		s.prefixes[b.Name] = b.Prefix
	}
	return nil
}

// detect classifies opts.Dir (FORMAT.md §5, dbdir.Detect): fresh reports
// an empty directory that may be created.
// RepairJournalName is the file a LevelDB repair (package recovery,
// `durusbdb recover --force`) keeps in the directory while it runs:
// leveldb::RepairDB archives the write-ahead logs it converted before it
// writes the MANIFEST that names their tables, so a repair killed in
// between leaves a database that opens without its last commits. A
// directory holding the journal is refused (ErrRepairInterrupted) until a
// repair completes.
const RepairJournalName = "durusbdb.repairing"

// RepairInterrupted reports whether dir holds the journal of a repair
// that did not complete (RepairJournalName): running the repair again
// finishes it.
func RepairInterrupted(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, RepairJournalName))
	return err == nil
}

// ErrRepairInterrupted: the directory holds RepairJournalName. It wraps
// kv.ErrCorrupt; running the repair again finishes it.
var ErrRepairInterrupted = fmt.Errorf("leveldb: repair interrupted: %w", kv.ErrCorrupt)

func detect(opts kv.Options) (fresh bool, err error) {
	dir := opts.Dir
	if dir == "" {
		return false, errors.New("leveldb: open: Options.Dir is empty")
	}
	l, err := dbdir.Detect(dir)
	if errors.Is(err, syscall.ENOTDIR) {
		return false, fmt.Errorf("leveldb: open %s: not a directory: %w", dir, kv.ErrNotDB)
	}
	if err != nil {
		return false, fmt.Errorf("leveldb: open %s: %w", dir, err)
	}
	switch l.Kind {
	case dbdir.BDB:
		return false, fmt.Errorf("leveldb: open %s: this is a Berkeley DB directory (meta.db present), not a LevelDB one: %w", dir, kv.ErrNotDB)
	case dbdir.LevelDB:
		if RepairInterrupted(dir) {
			return false, fmt.Errorf("leveldb: open %s: a repair (durusbdb recover --force) was interrupted, and the database it left must not be opened (its converted logs are no longer in its MANIFEST): run `durusbdb recover --dir %s --force` again to finish it: %w", dir, dir, ErrRepairInterrupted)
		}
		return false, nil
	case dbdir.Empty:
		if !opts.Create || opts.ReadOnly {
			return false, fmt.Errorf("leveldb: open %s: empty directory and creating a database was not asked for: %w", dir, kv.ErrNotDB)
		}
		return true, nil
	}
	return false, fmt.Errorf("leveldb: open %s: unknown layout (files %s); supported: a LevelDB directory (CURRENT present), a Berkeley DB directory (meta.db present) or an empty directory: %w",
		dir, l.List(), kv.ErrNotDB)
}

// checkMarker writes the backend marker in a fresh database and checks it in
// an existing one.
func (s *Store) checkMarker(fresh bool) error {
	if fresh {
		return s.mapError("write backend marker in", s.db.Put(s.wSync, backendKey, []byte(BackendName)))
	}
	ro := levigo.NewReadOptions()
	defer ro.Close()
	ro.SetVerifyChecksums(true)
	v, err := s.db.Get(ro, backendKey)
	if err != nil {
		return s.mapError("read backend marker in", err)
	}
	switch {
	case v == nil && s.readOnly:
		s.logger.Warn("leveldb: database has no backend marker", "dir", s.dir)
	case v == nil:
		s.logger.Warn("leveldb: database had no backend marker; writing it", "dir", s.dir)
		return s.mapError("write backend marker in", s.db.Put(s.wSync, backendKey, []byte(BackendName)))
	case string(v) != BackendName:
		return fmt.Errorf("leveldb: open %s: meta backend is %q, not %q: %w", s.dir, v, BackendName, kv.ErrNotDB)
	}
	return nil
}

// lockDir takes the directory lock (package dirlock) before LevelDB
// opens the directory: exclusive in every mode, since LevelDB allows one
// process per database, but a read-only open creates no lock file.
//
// LevelDB's own LOCK is an fcntl lock, and fcntl locks belong to the
// process: closing any descriptor of the LOCK file in the process drops
// them. libleveldb 1.23 does exactly that when a second DB::Open of the
// same directory in the same process fails ("already held by process"), so
// without this guard a refused second OpenStore would silently unlock the
// first one for other processes. dirlock's flocks belong to the open file
// description, so a second OpenStore in this process, or one in another
// durusbdb process, fails here first with kv.ErrInUse. (Code that copies
// the directory must likewise never open LOCK: see the package
// documentation.)
func (s *Store) lockDir() error {
	mode := dirlock.Write
	if s.readOnly {
		mode = dirlock.ReadExclusive
	}
	l, err := dirlock.Take(s.dir, mode)
	if err != nil {
		return fmt.Errorf("leveldb: open %s: %w", s.dir, err)
	}
	s.dirLock = l
	return nil
}

// unlockDir releases the directory lock.
func (s *Store) unlockDir() {
	s.dirLock.Close()
	s.dirLock = nil
}

func (s *Store) freeOptions() {
	if s.commitWB != nil {
		s.commitWB.Close()
	}
	for _, ro := range s.roFree {
		ro.Close()
	}
	s.roFree = nil
	if s.wSync != nil {
		s.wSync.Close()
	}
	if s.wNoSync != nil {
		s.wNoSync.Close()
	}
	if s.opts != nil {
		s.opts.Close()
	}
	if s.filter != nil {
		s.filter.Close()
	}
	if s.cache != nil {
		s.cache.Close()
	}
	s.commitWB, s.wSync, s.wNoSync, s.opts, s.filter, s.cache = nil, nil, nil, nil, nil, nil
}

// Dir returns the database directory.
func (s *Store) Dir() string { return s.dir }

// Backend returns "leveldb".
func (s *Store) Backend() string { return BackendName }

// Begin starts a transaction. A writable one waits (honouring ctx) for the
// writer slot, which it holds until it ends; on a read-only store it fails
// with kv.ErrReadOnly. A read-only one takes a LevelDB snapshot. A ctx
// already done fails at once.
func (s *Store) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("leveldb: begin %s: %w", s.dir, kv.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("leveldb: begin %s: %w", s.dir, err)
	}
	if writable {
		if s.readOnly {
			return nil, fmt.Errorf("leveldb: begin write transaction on %s: %w", s.dir, kv.ErrReadOnly)
		}
		select {
		case s.writer <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("leveldb: begin write transaction on %s: %w", s.dir, ctx.Err())
		case <-s.closing:
			return nil, fmt.Errorf("leveldb: begin %s: %w", s.dir, kv.ErrClosed)
		}
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		if writable {
			<-s.writer
		}
		return nil, fmt.Errorf("leveldb: begin %s: %w", s.dir, kv.ErrClosed)
	}
	t := &txn{s: s, writable: writable}
	if writable {
		t.writes = newOverlay()
	} else {
		t.openSnapshot()
	}
	s.txnMu.Lock()
	s.txns[t] = struct{}{}
	s.txnMu.Unlock()
	return t, nil
}

// Flush makes every transaction committed before the call durable: it
// writes their redo records to the redo log and fdatasyncs it (or, when
// the ring has no room, checkpoints: LevelDB's log files and directory
// fsynced). It does nothing when no commit was written since the last
// Flush, and nothing on a read-only store.
func (s *Store) Flush() error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return fmt.Errorf("leveldb: flush %s: %w", s.dir, kv.ErrClosed)
	}
	return s.flush()
}

// flush is Flush without the checks. Callers hold s.closeMu.
func (s *Store) flush() error {
	if s.readOnly {
		return nil
	}
	w := s.written.Load()
	if w == s.flushed.Load() {
		return nil
	}
	// Not a synced LevelDB write, nor an fsync of LevelDB's log: that log
	// grows with every record, and an fdatasync that changes a file's size
	// also journals its inode (docs/PERFORMANCE.md, "Fifteenth session").
	// The redo log is preallocated and written over in place.
	s.flushMu.Lock()
	err := s.flushWAL()
	s.flushMu.Unlock()
	if err != nil {
		return fmt.Errorf("leveldb: flush %s: %w", s.dir, err)
	}
	s.markFlushed(w)
	return nil
}

// markFlushed raises s.flushed to w (never lowers it: flushes finish in
// any order).
func (s *Store) markFlushed(w uint64) {
	for {
		f := s.flushed.Load()
		if f >= w || s.flushed.CompareAndSwap(f, w) {
			return
		}
	}
}

// Checkpoint makes every commit durable in LevelDB itself (its log files
// and the directory fsynced), empties the redo log and deletes the commit
// markers. LevelDB compacts in the background and removes its own
// obsolete logs, so removeLogs changes nothing.
func (s *Store) Checkpoint(ctx context.Context, removeLogs bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return fmt.Errorf("leveldb: checkpoint %s: %w", s.dir, kv.ErrClosed)
	}
	if s.readOnly {
		return nil
	}
	w := s.written.Load()
	if err := s.fullCheckpoint(); err != nil {
		return fmt.Errorf("leveldb: checkpoint %s: %w", s.dir, err)
	}
	s.markFlushed(w)
	return nil
}

// Close ends every open transaction (aborting writes, closing their
// cursors and snapshots), makes the commits written without sync durable
// (LevelDB's own close does not sync its log), then closes the database and
// frees everything. It returns the error of that last flush, if any; the
// store is closed in any case. Later calls return nil.
func (s *Store) Close() error {
	s.stopCheckpoints()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Load() {
		return nil
	}
	s.closed.Store(true)
	close(s.closing)
	s.txnMu.Lock()
	open := make([]*txn, 0, len(s.txns))
	for t := range s.txns {
		open = append(open, t)
	}
	s.txns = map[*txn]struct{}{}
	s.txnMu.Unlock()
	for _, t := range open {
		t.release(true)
	}
	// LevelDB's own close does not sync its log: a full checkpoint makes
	// every commit durable in LevelDB and leaves the redo log empty.
	var err error
	if s.wal != nil {
		if err = s.fullCheckpoint(); err != nil {
			err = fmt.Errorf("leveldb: close %s: %w", s.dir, err)
		}
		if cerr := s.wal.close(); err == nil && cerr != nil {
			err = fmt.Errorf("leveldb: close %s: %w", s.dir, cerr)
		}
		s.wal = nil
	}
	s.db.Close()
	s.freeOptions()
	s.removeCopy()
	s.unlockDir()
	s.logger.Debug("leveldb: closed", "dir", s.dir)
	return err
}

// maxIdleReadOptions bounds the read options kept for reuse.
const maxIdleReadOptions = 64

// getReadOptions returns read options with checksum verification on; the
// caller must set the snapshot. Callers hold s.closeMu for reading.
func (s *Store) getReadOptions() *levigo.ReadOptions {
	s.roMu.Lock()
	if n := len(s.roFree); n > 0 {
		ro := s.roFree[n-1]
		s.roFree = s.roFree[:n-1]
		s.roMu.Unlock()
		return ro
	}
	s.roMu.Unlock()
	ro := levigo.NewReadOptions()
	ro.SetVerifyChecksums(true)
	return ro
}

// putReadOptions gives ro back for reuse. Its snapshot (about to be
// released) stays set: every user of getReadOptions sets its own before
// reading. Callers hold s.closeMu.
func (s *Store) putReadOptions(ro *levigo.ReadOptions) {
	s.roMu.Lock()
	if len(s.roFree) < maxIdleReadOptions {
		s.roFree = append(s.roFree, ro)
		ro = nil
	}
	s.roMu.Unlock()
	if ro != nil {
		ro.Close()
	}
}

// forget removes t from the open transactions.
func (s *Store) forget(t *txn) {
	s.txnMu.Lock()
	delete(s.txns, t)
	s.txnMu.Unlock()
}

// bucketPrefix returns the key prefix of bucket or kv.ErrNoBucket.
func (s *Store) bucketPrefix(bucket string) (byte, error) {
	p, ok := s.prefixes[bucket]
	if !ok {
		return 0, fmt.Errorf("leveldb: %s: bucket %q: %w", s.dir, bucket, kv.ErrNoBucket)
	}
	return p, nil
}

// nameCorruption adds to a corruption error the names of the damaged
// table or log files, found by verify (run once per Store, bounded by
// verifyBudget; the finding is cached, damage does not heal).
func (s *Store) nameCorruption(err error) error {
	s.corruptMu.Lock()
	defer s.corruptMu.Unlock()
	if s.corrupt == "" {
		damaged, unchecked, verr := verify(s.dir, verifyBudget)
		switch {
		case verr != nil:
			s.corrupt = "verifying the files failed: " + verr.Error()
		case len(damaged) == 0:
			s.corrupt = "no damaged file found by Verify"
		default:
			s.corrupt = describeDamage(damaged, unchecked)
		}
	}
	return fmt.Errorf("%w; %s", err, s.corrupt)
}

// Get reads one key outside any transaction (one LevelDB Get with checksum
// verification). It implements kv.Getter; a missing key gives an error
// wrapping kv.ErrNotFound.
func (s *Store) Get(bucket string, key []byte) ([]byte, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("leveldb: get in %s: %w", s.dir, kv.ErrClosed)
	}
	p, err := s.bucketPrefix(bucket)
	if err != nil {
		return nil, err
	}
	ro := s.getReadOptions()
	ro.SetSnapshot(nil) // pooled options may still name a released snapshot
	v, err := s.db.Get(ro, fullKey(p, key))
	s.putReadOptions(ro)
	if err != nil {
		return nil, s.mapError(fmt.Sprintf("get %s key %x in", bucket, key), err)
	}
	if v == nil {
		return nil, kv.ErrNotFound
	}
	return v, nil
}

// readCopies is how many copies of a value a Get holds at its peak:
// LevelDB reads the table block holding the value (uncompressing it into
// a second buffer when it is compressed) and copies the value into a C++
// string, the C API copies that into a malloc'd buffer, and levigo copies
// that into the Go slice; each copy is freed once the next is made, so
// about three are alive at once.
const readCopies = 3

// ReadCost implements kv.ReadCoster: a Get of a value of n bytes holds
// about readCopies×n bytes at its peak, most of it in C memory. LevelDB
// cannot tell a value's size before it has read it (there is no bounded
// read: Get copies the value, an iterator reads its whole block), so this
// is what a caller that knows the size from elsewhere reserves.
func (s *Store) ReadCost(n int) int { return readCopies * n }

var (
	_ kv.Getter     = (*Store)(nil)
	_ kv.ReadCoster = (*Store)(nil)
)

// LibraryVersion returns the version of the LevelDB library this binary
// links ("1.23"), for `durusbdb version` and bug reports.
func LibraryVersion() string {
	return fmt.Sprintf("%d.%d", levigo.GetLevelDBMajorVersion(), levigo.GetLevelDBMinorVersion())
}

// replayRoomMiB is the room, in MiB rounded up, that LevelDB's open needs
// in dir to replay its log files into a table (about their size) and
// write a new MANIFEST and log: the log files' size plus 1 MiB.
func replayRoomMiB(dir string) int64 {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var n int64
	for _, l := range logs {
		if fi, err := os.Stat(l); err == nil {
			n += fi.Size()
		}
	}
	return (n+(1<<20)-1)>>20 + 1
}
