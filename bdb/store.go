//go:build bdb

package bdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/dirlock"
	"github.com/durusbdb/durusbdb/kv"
)

var _ kv.Store = (*Store)(nil)

// Store is the Berkeley DB kv.Store: one environment in a directory and one
// database file per bucket. It is safe for concurrent use.
type Store struct {
	dir      string
	readOnly bool
	log      *slog.Logger
	env      *Env
	specs    []kv.BucketSpec
	lock     *dirlock.Lock // the directory lock, held until Close

	// handles is the current bucket handle set (see handleSet); Reopen
	// swaps it, under reopenMu.
	handles  atomic.Pointer[handleSet]
	reopenMu sync.Mutex

	// cacheSize is the environment's cache in bytes (MaxTxnChanges).
	cacheSize int64

	mu     sync.Mutex
	closed bool
}

// changeBytes is what one changed small key costs a transaction's share
// of the cache under snapshot isolation: its part of a btree leaf page
// (about 24 bytes of key, data and index, in a page that a transaction
// changing keys in oid order fills) in the refcounts and garbage files,
// and the page's version from before the transaction, with room to
// spare. Measured (docs/OPERATIONS.md, "Memory under any input"): a
// record with 500k new references committed with a 16 MiB cache, but
// crawled; 1M with 64 MiB had not finished after 5 minutes.
const changeBytes = 96

// MaxTxnChanges bounds the small keys one transaction may change (see
// kv.TxnBounded): the cache divided by changeBytes.
func (s *Store) MaxTxnChanges() int { return int(s.cacheSize / changeBytes) }

// OpenStore opens the Berkeley DB store in opts.Dir (which must exist),
// creating the environment and missing bucket files when opts.Create is
// set. See the package doc for the environment it opens, the read-only
// mode and the lock it holds until Close.
func OpenStore(opts kv.Options) (_ *Store, err error) {
	present, err := checkDir(opts)
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{dir: dir, readOnly: opts.ReadOnly, log: logger,
		specs: append([]kv.BucketSpec(nil), opts.Buckets...), cacheSize: opts.CacheSize}
	if s.cacheSize <= 0 {
		s.cacheSize = kv.DefaultCacheSize
	}
	// Every failure from here on undoes what was done so far: the
	// environment (with the databases opened in it) and the lock.
	defer func() {
		if err == nil {
			return
		}
		if s.env != nil {
			s.Close()
		} else {
			s.lock.Close()
		}
	}()
	if s.lock, err = lockDir(dir, opts.ReadOnly); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		if err := recoverForRead(dir, s.lock, opts.CacheSize, logger); err != nil {
			return nil, err
		}
	} else if err := setMark(s.lock, markOpen); err != nil {
		return nil, fmt.Errorf("bdb: open %s: %w", dir, err)
	}
	eo := EnvOptions{ReadOnly: opts.ReadOnly, CacheSize: opts.CacheSize, Logger: logger}
	if opts.Replication != nil {
		eo.Repl = replOptions(opts.Replication, opts)
	}
	if s.env, err = OpenEnv(dir, eo); err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := backRegions(dir); err != nil {
			return nil, err
		}
	}
	dbs := make(map[string]*DB, len(opts.Buckets))
	if opts.Replication != nil {
		ctx, stop := opts.Replication.CancelContext(context.Background())
		ctx, cancel := context.WithTimeout(ctx, replOpenTimeout)
		err = s.openBucketsReplicated(ctx, opts.Buckets, dbs)
		if cause := context.Cause(ctx); err != nil && errors.Is(cause, kv.ErrOpenCancelled) {
			err = fmt.Errorf("bdb: open %s: %w", dir, cause)
		}
		cancel()
		stop()
	} else {
		err = s.openBuckets(opts.Buckets, present, dbs)
	}
	if err != nil {
		return nil, err
	}
	s.handles.Store(newHandleSet(dbs))
	logger.Debug("bdb: store open", "dir", dir, "read_only", opts.ReadOnly, "libdb", libdb.Version())
	return s, nil
}

// checkDir refuses, before anything is written or locked, what OpenStore
// cannot open: a missing or unwritable directory, bad bucket specs, a
// directory of another layout (dbdir.Detect), a database without Create,
// missing bucket files, a bucket file that is not a Berkeley DB database.
// It returns which files of opts.Dir exist.
func checkDir(opts kv.Options) (map[string]bool, error) {
	dir := opts.Dir
	if dir == "" {
		return nil, errors.New("bdb: open: no directory given")
	}
	l, err := dbdir.Detect(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("bdb: open %s: directory does not exist: %w", dir, err)
	case errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("bdb: open %s: not a directory: %w", dir, syscall.ENOTDIR)
	case err != nil:
		return nil, fmt.Errorf("bdb: open %s: %w", dir, err)
	}
	if !opts.ReadOnly {
		if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
			return nil, fmt.Errorf("bdb: open %s: directory is not writable: %w", dir, err)
		}
	}
	if len(opts.Buckets) == 0 {
		return nil, fmt.Errorf("bdb: open %s: no buckets given", dir)
	}
	present := map[string]bool{}
	for _, n := range l.Files {
		present[n] = true
	}
	var missing []string
	for _, b := range opts.Buckets {
		if b.File == "" || b.Name == "" {
			return nil, fmt.Errorf("bdb: open %s: bucket %q has no name or file", dir, b.Name)
		}
		if !present[b.File] {
			missing = append(missing, b.File)
		}
	}
	// A site stopped during its internal init holds partial copies of the
	// master's files, which libdb's replication-aware open starts again.
	initPending := opts.Replication != nil && !opts.ReadOnly && replInitPending(dir)
	switch {
	case initPending:
	case l.Kind == dbdir.Empty && opts.Replication != nil && !opts.ReadOnly:
		// A site joining a group starts from an empty directory.
	case l.Kind == dbdir.Empty && (!opts.Create || opts.ReadOnly):
		return nil, fmt.Errorf("bdb: open %s: no database in directory (files %s missing) and Create not set: %w",
			dir, bucketFiles(opts.Buckets), fs.ErrNotExist)
	case l.Kind == dbdir.Empty:
	case l.Kind != dbdir.BDB || len(missing) == len(opts.Buckets):
		return nil, fmt.Errorf("bdb: open %s: not a Berkeley DB directory of this layout (found %s; want %s): %w",
			dir, l.List(), bucketFiles(opts.Buckets), kv.ErrNotDB)
	case len(missing) > 0 && (!opts.Create || opts.ReadOnly):
		return nil, fmt.Errorf("bdb: open %s: database files %s missing: %w", dir, strings.Join(missing, ", "), kv.ErrNoBucket)
	}
	for _, b := range opts.Buckets {
		if present[b.File] && !initPending {
			if err := checkMagic(filepath.Join(dir, b.File)); err != nil {
				return nil, err
			}
		}
	}
	return present, nil
}

// openBuckets opens (creating the missing ones) the bucket databases in
// the store's environment, into dbs.
func (s *Store) openBuckets(specs []kv.BucketSpec, present map[string]bool, dbs map[string]*DB) error {
	for _, b := range specs {
		if _, dup := dbs[b.Name]; dup {
			return fmt.Errorf("bdb: open %s: bucket %q given twice", s.dir, b.Name)
		}
		o := DBOptions{Access: Existing}
		if !present[b.File] {
			o = bucketOptions(b)
		}
		db, err := s.env.OpenDB(b.File, o)
		if err != nil {
			if why := cutShort(filepath.Join(s.dir, b.File)); why != "" {
				return fmt.Errorf("bdb: open %s: %s is damaged: %s (restore the latest backup): %w (%w)",
					s.dir, filepath.Join(s.dir, b.File), why, kv.ErrCorrupt, err)
			}
			if c := libdb.Code(err); c == int(syscall.EINVAL) || c == int(libdb.ErrOldVersion) {
				return fmt.Errorf("bdb: open %s: %s is not a Berkeley DB 5.3 database: %w (%w)",
					s.dir, b.File, kv.ErrNotDB, err)
			}
			return err
		}
		dbs[b.Name] = db
	}
	return nil
}

// cutShort says, for a database file whose meta page holds a valid page
// size but whose length is not a whole number of pages (truncated, or cut
// by a full disk), what is wrong with it; "" otherwise. libdb's own words
// for it (EINVAL, "file size not a multiple of the pagesize") read as a
// file that is no database at all.
func cutShort(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	meta := make([]byte, 24)
	fi, err := f.Stat()
	if err != nil || fi.Size() < int64(len(meta)) {
		return ""
	}
	if _, err := io.ReadFull(f, meta); err != nil || checkMagic(path) != nil {
		return ""
	}
	size := int64(binary.LittleEndian.Uint32(meta[20:]))
	if size < 512 || size > 64<<10 || size&(size-1) != 0 || fi.Size()%size == 0 {
		return ""
	}
	return fmt.Sprintf("its %d bytes are not a whole number of its %d-byte pages (truncated, or cut short)", fi.Size(), size)
}

// checkMagic refuses, before anything is written, a bucket file that is
// not a Berkeley DB btree or hash database (magic number at offset 12 of
// the meta page, in either byte order).
func checkMagic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("bdb: open %s: %w", path, err)
	}
	defer f.Close()
	var hdr [16]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("bdb: open %s: not a Berkeley DB database (%v): %w", path, err, kv.ErrNotDB)
	}
	le := binary.LittleEndian.Uint32(hdr[12:])
	be := binary.BigEndian.Uint32(hdr[12:])
	for _, m := range []uint32{0x053162, 0x061561} { // DB_BTREEMAGIC, DB_HASHMAGIC
		if le == m || be == m {
			return nil
		}
	}
	return fmt.Errorf("bdb: open %s: not a Berkeley DB btree or hash database (magic %#x): %w", path, le, kv.ErrNotDB)
}

func bucketFiles(bs []kv.BucketSpec) string {
	var l []string
	for _, b := range bs {
		l = append(l, b.File)
	}
	return strings.Join(l, ", ")
}

// Env returns the store's environment, for tools (stats, verify, backup).
// It is closed by Store.Close.
func (s *Store) Env() *Env { return s.env }

// DB returns the current database of bucket, or nil. After a Reopen it is
// a new one: tools hold it only while no reopen can run.
func (s *Store) DB(bucket string) *DB { return s.handles.Load().dbs[bucket] }

// Dir returns the store directory.
func (s *Store) Dir() string { return s.dir }

// Backend returns "bdb".
func (s *Store) Backend() string { return "bdb" }

// Begin starts a transaction: a write transaction (serializable, reads
// taking write locks) or a snapshot read transaction (see the package
// doc). A writable Begin on a read-only store fails with kv.ErrReadOnly.
func (s *Store) Begin(ctx context.Context, writable bool) (kv.Txn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if writable && s.readOnly {
		return nil, opErr("begin write transaction in "+s.dir, ErrReadOnly, nil)
	}
	// A replicated environment has no MVCC (it panics replicas) and libdb
	// refuses DB_TXN_SNAPSHOT on a replica: read transactions there read
	// committed data, so that a long one does not hold back the
	// application of the master's log (docs/REPLICATION.md).
	to := TxnOptions{Snapshot: !writable}
	if !writable && s.env.Replicated() {
		to = TxnOptions{ReadCommitted: true}
	}
	h := s.acquire()
	t, err := s.env.Begin(to)
	if err != nil {
		s.release(h)
		return nil, err
	}
	return &storeTxn{s: s, h: h, t: t, writable: writable}, nil
}

// Flush makes every commit so far durable: one log flush (DB_ENV->log_flush
// with a NULL LSN). On a read-only store it does nothing.
func (s *Store) Flush() error { return s.env.Flush() }

var _ kv.Panicker = (*Store)(nil)

// Panic implements kv.Panicker: Env.Panic (DB_PANIC_ENVIRONMENT).
func (s *Store) Panic() error { return s.env.Panic() }

// Checkpoint writes a checkpoint (DB_ENV->txn_checkpoint) and, when
// removeLogs is set, removes the log files no longer needed for normal
// recovery (DB_ENV->log_archive with DB_ARCH_REMOVE). On a read-only store
// it fails with kv.ErrReadOnly.
func (s *Store) Checkpoint(ctx context.Context, removeLogs bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.env.Checkpoint(); err != nil {
		return err
	}
	if !removeLogs {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.env.RemoveLogs()
}

// Close aborts open transactions, closes every database and the
// environment, and releases the directory lock. A second Close returns nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.env.Close()
	if err == nil && !s.readOnly {
		// The region files go with a clean close: every writable open
		// recovers and recreates them anyway, and libdb's own tools
		// (db_verify, db_dump, db_stat) run on a stopped directory in an
		// environment of their own instead of joining leftover regions
		// sized for the server (db_verify ran out of mutexes there and
		// crashed). A process still joined (a hot backup) keeps them:
		// then the removal fails, harmlessly.
		if rerr := libdb.EnvRemove(s.dir, 0); rerr != nil {
			s.log.Debug("bdb: region files kept at close", "dir", s.dir, "err", rerr)
		}
	}
	if err == nil && !s.readOnly {
		// Only a clean close says so: after any failure the next open
		// (writable or not) treats the directory as needing recovery.
		err = setMark(s.lock, markClean)
	}
	s.lock.Close()
	return err
}

// recoverForRead makes a read-only open safe after a crash: if the last
// writer of dir did not close it cleanly (NeedsRecovery), the database
// files may lack committed transactions that only the log holds. When the
// directory is writable, recoverForRead then runs normal recovery under an
// exclusive lock of its own (the shared one cannot become exclusive in
// place, so it is released meanwhile and taken again by Retake) and marks
// the directory clean; otherwise, or if another process holds the
// directory meanwhile, it refuses with an error wrapping kv.ErrNeedRecover
// that names `durusbdb recover`.
func recoverForRead(dir string, shared *dirlock.Lock, cacheSize int64, log *slog.Logger) error {
	need, err := NeedsRecovery(dir)
	if err != nil || !need {
		return err
	}
	refuse := func(why string) error {
		return fmt.Errorf("bdb: open %s read-only: the last writer did not close it, so its database files may lack committed transactions, and %s; run `durusbdb recover --dir %s` (or start the server once) first: %w",
			dir, why, dir, kv.ErrNeedRecover)
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return refuse("the directory is not writable, so recovery cannot run here")
	}
	shared.Close()
	ex, err := lockDir(dir, false)
	if err != nil {
		if errors.Is(err, kv.ErrInUse) {
			return refuse("another process holds it, so recovery cannot run now")
		}
		return err
	}
	defer ex.Close()
	log.Warn("bdb: the last writer did not close the directory cleanly; running recovery before the read-only open", "dir", dir)
	if _, err := RecoverEnv(dir, RecoverOptions{CacheSize: cacheSize}); err != nil {
		return fmt.Errorf("bdb: open %s read-only: recovery first: %w", dir, err)
	}
	if err := MarkRecovered(ex); err != nil {
		return err
	}
	ex.Close()
	return shared.Retake()
}

// storeTxn is the kv.Txn of a Store. It holds the handle set it began
// with until it ends.
type storeTxn struct {
	s        *Store
	h        *handleSet // nil once released
	t        *Txn
	writable bool
}

func (x *storeTxn) db(bucket string) (*DB, error) {
	if x.h == nil {
		return nil, ErrTxnDone
	}
	return x.h.bucket(x.s.dir, bucket)
}

// end releases the transaction's handle set (once).
func (x *storeTxn) end() {
	if x.h != nil {
		x.s.release(x.h)
		x.h = nil
	}
}

// Get implements kv.Txn; in a write transaction it reads with DB_RMW.
func (x *storeTxn) Get(bucket string, key []byte) ([]byte, error) {
	db, err := x.db(bucket)
	if err != nil {
		return nil, err
	}
	var flags uint32
	if x.writable {
		flags = libdb.RMW
	}
	return db.get(x.t, key, flags, -1)
}

// live reports ErrTxnDone (or ErrClosed) for an ended transaction.
func (x *storeTxn) live() error {
	if err := x.t.lock(); err != nil {
		return err
	}
	x.t.mu.Unlock()
	return nil
}

// Put implements kv.Txn.
func (x *storeTxn) Put(bucket string, key, value []byte) error {
	if !x.writable {
		if err := x.live(); err != nil {
			return err
		}
		return opErr("put into "+bucket+" in a read transaction", ErrReadOnly, nil)
	}
	db, err := x.db(bucket)
	if err != nil {
		return err
	}
	return db.Put(x.t, key, value)
}

// Delete implements kv.Txn; a missing key is not an error.
func (x *storeTxn) Delete(bucket string, key []byte) error {
	if !x.writable {
		if err := x.live(); err != nil {
			return err
		}
		return opErr("delete from "+bucket+" in a read transaction", ErrReadOnly, nil)
	}
	db, err := x.db(bucket)
	if err != nil {
		return err
	}
	err = db.Delete(x.t, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Cursor implements kv.Txn.
func (x *storeTxn) Cursor(bucket string) (kv.Cursor, error) {
	db, err := x.db(bucket)
	if err != nil {
		return nil, err
	}
	c, err := db.Cursor(x.t)
	if err != nil {
		return nil, err
	}
	return &storeCursor{c: c, hash: db.typ == Hash}, nil
}

// Commit implements kv.Txn.
func (x *storeTxn) Commit(d kv.Durability) error {
	defer x.end()
	return x.t.Commit(d)
}

// Abort implements kv.Txn.
func (x *storeTxn) Abort() error {
	defer x.end()
	return x.t.Abort()
}

// storeCursor is the kv.Cursor of a Store. It keeps the current record in
// the bdb cursor's buffers and copies it out on Key and Value.
type storeCursor struct {
	c     *Cursor
	hash  bool
	valid bool
	err   error
}

func (sc *storeCursor) move(search []byte, flags uint32) bool {
	err := sc.c.move(search, flags)
	if err == nil {
		sc.valid = true
		return true
	}
	sc.valid = false
	if !errors.Is(err, ErrNotFound) {
		sc.err = err
	}
	return false
}

// First implements kv.Cursor.
func (sc *storeCursor) First() bool { return sc.move(nil, libdb.First) }

// Last implements kv.Cursor.
func (sc *storeCursor) Last() bool { return sc.move(nil, libdb.Last) }

// Seek positions at the first key >= key. Over a hash bucket, whose order
// is unspecified, it positions at key itself if present.
func (sc *storeCursor) Seek(key []byte) bool {
	if sc.hash {
		return sc.move(key, libdb.Set)
	}
	return sc.move(key, libdb.SetRange)
}

// Next implements kv.Cursor; an invalid cursor stays invalid.
func (sc *storeCursor) Next() bool {
	if !sc.valid {
		return false
	}
	return sc.move(nil, libdb.Next)
}

// Prev implements kv.Cursor; an invalid cursor stays invalid.
func (sc *storeCursor) Prev() bool {
	if !sc.valid {
		return false
	}
	return sc.move(nil, libdb.Prev)
}

// Valid implements kv.Cursor.
func (sc *storeCursor) Valid() bool { return sc.valid }

// Key implements kv.Cursor: a copy owned by the caller.
func (sc *storeCursor) Key() []byte {
	if !sc.valid {
		return nil
	}
	return append([]byte(nil), sc.c.k...)
}

// Value implements kv.Cursor: a copy owned by the caller.
func (sc *storeCursor) Value() []byte {
	if !sc.valid {
		return nil
	}
	return append([]byte(nil), sc.c.v...)
}

// Err implements kv.Cursor.
func (sc *storeCursor) Err() error { return sc.err }

// Close implements kv.Cursor.
func (sc *storeCursor) Close() error {
	sc.valid = false
	return sc.c.Close()
}

// getRetries is how many times Store.Get reads again after libdb refused
// a read with DB_LOCK_DEADLOCK.
const getRetries = 2

// Get reads one key without a transaction (a locked, read-committed
// DB->get): one libdb call instead of three for Begin+Get+Abort. It
// implements kv.Getter; a missing key gives an error wrapping kv.ErrNotFound.
//
// A read that meets a replication role change's lockout is held until the
// lockout ends and then refused with DB_LOCK_DEADLOCK (__db_rep_enter; see
// cgo/libdb/repmgr_wake.c), as is the rare victim of a deadlock on a read
// lock: outside a transaction the read holds nothing, so Get reads again
// at once, up to getRetries times, instead of failing a client's load.
func (s *Store) Get(bucket string, key []byte) ([]byte, error) {
	return s.get(bucket, key, -1)
}

// GetBounded is Get for a caller that accounts for a value's memory before
// it is read: a value longer than limit bytes is not read (libdb answers
// DB_BUFFER_SMALL with its size before it touches the overflow pages), and
// the error is a *kv.ValueSizeError giving the size. It implements
// kv.BoundedGetter.
func (s *Store) GetBounded(bucket string, key []byte, limit int) ([]byte, error) {
	return s.get(bucket, key, max(limit, 0))
}

// get is Get (limit < 0) and GetBounded (limit ≥ 0).
func (s *Store) get(bucket string, key []byte, limit int) ([]byte, error) {
	h := s.acquire()
	defer s.release(h)
	d, ok := h.dbs[bucket]
	if !ok {
		return nil, fmt.Errorf("bdb: get in %s: bucket %q: %w", s.dir, bucket, kv.ErrNoBucket)
	}
	v, err := d.get(nil, key, 0, limit)
	for i := 0; i < getRetries && errors.Is(err, ErrDeadlock); i++ {
		v, err = d.get(nil, key, 0, limit)
	}
	if err != nil && limit >= 0 {
		var se *kv.ValueSizeError
		if errors.As(err, &se) {
			se.Bucket = bucket
		}
	}
	return v, err
}

var (
	_ kv.Getter        = (*Store)(nil)
	_ kv.BoundedGetter = (*Store)(nil)
)

// LibraryVersion returns the version string of the libdb this binary
// links, for `durusbdb version` and bug reports.
func LibraryVersion() string { return libdb.Version() }

// RoomFor implements kv.RoomReporter: see Env.RoomFor.
func (s *Store) RoomFor(n int64) error { return s.env.RoomFor(n) }
