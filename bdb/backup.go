//go:build bdb

package bdb

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/internal/dbdir"
	"github.com/durusbdb/durusbdb/internal/dirlock"
	"github.com/durusbdb/durusbdb/kv"
)

// This file holds what package recovery needs of libdb beyond the store:
// joining an environment another process owns (hot backup), page-safe
// copies of database files, normal and catastrophic recovery with libdb's
// verbose messages, and the pieces of the upgrade procedure (DB->upgrade,
// DB_ENV->lsn_reset, on-disk version detection).

// JoinEnv opens the existing environment in dir alongside the process that
// owns it (a running server holding the directory lock), for a hot backup:
// DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL | DB_THREAD,
// without DB_RECOVER or DB_CREATE. It shares the owner's regions (cache,
// log, locks), so it sees every page the owner has in its cache. If the
// environment has panicked, the open fails with an error matching
// ErrRunRecovery. JoinEnv takes no flock; the caller must not write
// through the Env. Should this process die inside libdb, the owner's next
// open recovers (every writable open does).
func JoinEnv(dir string, cacheSize int64) (*Env, error) {
	le, err := libdb.EnvCreate()
	if err != nil {
		return nil, wrap("create environment "+dir, err)
	}
	if cacheSize <= 0 {
		cacheSize = kv.DefaultCacheSize
	}
	// The cache size only matters if this open creates the regions.
	if err := le.SetCacheSize(cacheSize, 1); err != nil {
		le.Close(0)
		return nil, wrap("set cache size of "+dir, err)
	}
	flags := libdb.InitTxn | libdb.InitLog | libdb.InitLock |
		libdb.InitMpool | libdb.Thread
	if err := le.Open(dir, flags, 0); err != nil {
		e := envError(le, "join environment "+dir, err)
		le.Close(0)
		return nil, e
	}
	return &Env{dir: dir, env: le, txns: make(map[*Txn]struct{}), dbs: make(map[*DB]struct{})}, nil
}

// CopyDB copies the database file (relative to the directory) into the
// directory target, page by page in coordination with the cache, so that
// no page is copied half-written while other processes keep committing.
// The copy is "fuzzy": pages changed after they were copied, or still
// only in the cache, are brought up to date by catastrophic recovery
// from log files copied after it. See DB_ENV->dbbackup.
func (e *Env) CopyDB(file, target string) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if e.readOnly {
		return opErr("copy "+file+" of "+e.dir, ErrReadOnly, nil)
	}
	err := e.env.DBBackup(file, target, 0)
	if err != nil {
		msg := e.env.LastError()
		e := wrap("copy "+filepath.Join(e.dir, file)+" to "+target, err)
		if msg != "" {
			e = fmt.Errorf("%w (libdb: %s)", e, msg)
		}
		return e
	}
	return nil
}

// RecoverOptions configure RecoverEnv.
type RecoverOptions struct {
	// Catastrophic runs DB_RECOVER_FATAL: recovery from the first log file
	// in the directory, for restored backups or damaged databases.
	// Otherwise normal recovery (DB_RECOVER) runs: from the last
	// checkpoint, which ends the log after a clean close.
	Catastrophic bool
	// MessageFile, if set, receives libdb's verbose recovery messages
	// (DB_VERB_RECOVERY), appended.
	MessageFile string
	// CacheSize in bytes; 0 means kv.DefaultCacheSize.
	CacheSize int64
	// Until, if set, bounds catastrophic recovery by a time (point-in-time
	// recovery, DB_ENV->set_tx_timestamp, second resolution): transactions
	// committed after it are rolled back and the log is truncated after
	// the last one kept. The log files must reach back to a checkpoint
	// before it; otherwise the open fails with EINVAL and libdb's message
	// names the earliest time possible. It implies Catastrophic.
	Until time.Time
	// LogChecked: the caller scanned the log itself and accepts where
	// recovery will end it (recovery's plan: a torn write, or a loss the
	// operator accepted). Without it, a recovery that would cut intact
	// records after a damaged stretch is refused (guardLogEnd).
	LogChecked bool
}

// RecoverInfo is the state of the log after recovery.
type RecoverInfo struct {
	// LogFiles are the log files in the directory, oldest first.
	LogFiles []string
	// EndFile, EndOffset: the end of the log (LSN [EndFile][EndOffset]).
	EndFile, EndOffset uint32
	// CkpFile, CkpOffset: the last checkpoint (recovery writes one).
	CkpFile, CkpOffset uint32
}

// RecoverEnv runs recovery in dir, which no other process may be using
// (hold the directory lock, see LockDir), then closes the environment and
// removes its region files, so that the next open sizes them itself. See
// DB_ENV->open with DB_RECOVER or DB_RECOVER_FATAL.
func RecoverEnv(dir string, opts RecoverOptions) (RecoverInfo, error) {
	le, err := libdb.EnvCreate()
	if err != nil {
		return RecoverInfo{}, wrap("create environment "+dir, err)
	}
	// The environment and the message file are closed on every path; a
	// failure before the environment's own close reports libdb's last
	// message with it.
	var mf *libdb.MsgFile
	defer func() {
		if mf != nil {
			mf.Close()
		}
	}()
	open := true
	defer func() {
		if open {
			le.Close(0)
		}
	}()
	fail := func(what string, err error) (RecoverInfo, error) {
		return RecoverInfo{}, envError(le, what+" "+dir, err)
	}
	if !opts.LogChecked {
		if err := guardLogEnd(dir); err != nil {
			return RecoverInfo{}, err
		}
	}
	cache := opts.CacheSize
	if cache <= 0 {
		cache = kv.DefaultCacheSize
	}
	if err := le.SetCacheSize(cache, 1); err != nil {
		return fail("set cache size of", err)
	}
	if opts.MessageFile != "" {
		if mf, err = libdb.OpenMsgFile(opts.MessageFile); err != nil {
			return fail("open message file for", err)
		}
		if err := le.SetMsgFile(mf); err != nil {
			return fail("set message file of", err)
		}
		if err := le.SetVerbose(libdb.VerbRecovery, true); err != nil {
			return fail("set verbose recovery on", err)
		}
	}
	what, flags, err := recoveryMode(le, opts)
	if err != nil {
		return fail(what, err)
	}
	if err := checkRegionRoom(dir, cache); err != nil {
		return RecoverInfo{}, err
	}
	if err := le.Open(dir, flags, 0); err != nil {
		_, err := fail(what, err)
		return RecoverInfo{}, withUnwritable(dir, err)
	}
	// libdb writes the checkpoint that ends recovery without flushing it
	// (txn_chkpt.c: DB_FLUSH only when not recovering), and the region
	// files holding the log buffer are removed below: without a forced
	// checkpoint and a log flush here, the next crash's recovery starts
	// from the first log record again and re-undoes transactions of
	// processes that died before this recovery, whose ids later processes
	// reused (two crashes under the collector made directories that no
	// recovery opens).
	if err := le.TxnCheckpoint(0, 0, libdb.Force); err != nil {
		return fail("checkpoint after recovering", err)
	}
	if err := le.LogFlush(); err != nil {
		return fail("flush the log after recovering", err)
	}
	info := recoveredInfo(le)
	open = false
	if err := le.Close(0); err != nil {
		return info, wrap("close environment "+dir+" after recovery", err)
	}
	if err := libdb.EnvRemove(dir, 0); err != nil {
		return info, wrap("remove region files of "+dir, err)
	}
	return info, nil
}

// recoveryMode returns the open flags of the recovery opts asks for
// (normal, catastrophic, or catastrophic up to opts.Until, which it sets
// on le) and what to call it in errors.
func recoveryMode(le *libdb.Env, opts RecoverOptions) (string, uint32, error) {
	what := "recover"
	if !opts.Until.IsZero() {
		opts.Catastrophic = true
		until := opts.Until.UTC().Format(time.RFC3339)
		if err := le.SetTxTimestamp(opts.Until); err != nil {
			return "set recovery time " + until + " of", 0, err
		}
		what = "catastrophic recovery until " + until + " of"
	} else if opts.Catastrophic {
		what = "catastrophic recovery of"
	}
	flags := libdb.Create | libdb.InitTxn | libdb.InitLog | libdb.InitLock |
		libdb.InitMpool | libdb.Thread
	if opts.Catastrophic {
		flags |= libdb.RecoverFatal
	} else {
		flags |= libdb.Recover
	}
	return what, flags, nil
}

// recoveredInfo reads where the log of a just-recovered environment ends,
// its last checkpoint and its log files.
func recoveredInfo(le *libdb.Env) RecoverInfo {
	var info RecoverInfo
	if ls, err := le.LogStat(); err == nil {
		info.EndFile, info.EndOffset = ls.CurFile, ls.CurOffset
	}
	if ts, err := le.TxnStat(); err == nil {
		info.CkpFile, info.CkpOffset = ts.LastCkpFile, ts.LastCkpOffset
	}
	if l, err := le.LogArchive(libdb.ArchLog); err == nil {
		sort.Strings(l)
		info.LogFiles = l
	}
	return info
}

// LockDir takes the directory lock exclusively (package dirlock), as a
// writable OpenStore does; the error wraps kv.ErrInUse if another process
// (a server) holds it. Close the lock to release it.
func LockDir(dir string) (*dirlock.Lock, error) { return lockDir(dir, false) }

// UpgradeFile upgrades the database file (relative to dir) in place to
// Berkeley DB 5.3's format (a no-op for a current file) and, with
// resetLSN, resets its page LSNs so that it no longer refers to the old
// log files. No process may have dir open. See DB->upgrade and
// DB_ENV->lsn_reset.
func UpgradeFile(dir, file string, resetLSN bool) error {
	le, err := libdb.EnvCreate()
	if err != nil {
		return wrap("create environment "+dir, err)
	}
	fail := func(what string, err error) error {
		msg := le.LastError()
		le.Close(0)
		e := wrap(what, err)
		if msg != "" {
			e = fmt.Errorf("%w (libdb: %s)", e, msg)
		}
		return e
	}
	// A private environment: cache only, in process memory, no region
	// files, no logging (the old logs are about to be removed).
	if err := le.Open(dir, libdb.Create|libdb.Private|libdb.InitMpool, 0); err != nil {
		return fail("open private environment in "+dir, err)
	}
	if err := le.Upgrade(file, 0); err != nil {
		return fail("upgrade "+filepath.Join(dir, file), err)
	}
	if resetLSN {
		if err := le.LSNReset(file, 0); err != nil {
			return fail("reset LSNs of "+filepath.Join(dir, file), err)
		}
	}
	return wrap("close private environment in "+dir, le.Close(0))
}

// FileVersion is the on-disk format of one file, read from its header.
type FileVersion struct {
	Name    string
	Kind    string // "log", "btree", "hash" or "unknown"
	Version uint32 // format version (0 if unknown)
	Current bool   // the version this libdb writes
	// Checksums: a database file created with page checksums
	// (DBOptions.Checksum; the meta page's DBMETA_CHKSUM flag).
	Checksums bool
}

// ReadFileVersion reads the header of a log file (log.NNNNNNNNNN) or a
// btree / hash database file: the magic number and the format version.
// Old releases differ: Berkeley DB 4.x logs have versions 7–16, 4.x btree
// files version 8 or 9, hash files 7–9 (5.3: log 19, btree 9, hash 9).
func ReadFileVersion(path string) (FileVersion, error) {
	fv := FileVersion{Name: filepath.Base(path), Kind: "unknown"}
	f, err := os.Open(path)
	if err != nil {
		return fv, fmt.Errorf("bdb: read version of %s: %w", path, err)
	}
	defer f.Close()
	var hdr [256]byte
	n, err := io.ReadFull(f, hdr[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return fv, fmt.Errorf("bdb: read version of %s: %w", path, err)
	}
	b := hdr[:n]
	if strings.HasPrefix(fv.Name, "log.") {
		// The first record of a log file is the persistent header (LOGP:
		// magic, version, ...); the record header before it is 12 to 28
		// bytes depending on the release and checksumming.
		for off := 0; off+8 <= len(b) && off < 64; off += 4 {
			for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
				if bo.Uint32(b[off:]) == libdb.LogMagic {
					fv.Kind = "log"
					fv.Version = bo.Uint32(b[off+4:])
					fv.Current = fv.Version == libdb.LogVersion
					return fv, nil
				}
			}
		}
		return fv, fmt.Errorf("bdb: %s is not a Berkeley DB log file (no log magic in its header): %w", path, kv.ErrCorrupt)
	}
	if len(b) < 20 {
		return fv, fmt.Errorf("bdb: %s is too short for a Berkeley DB database (%d bytes): %w", path, len(b), kv.ErrNotDB)
	}
	// DBMETA: lsn 8, pgno 4, magic 4, version 4, pagesize 4, encrypt_alg
	// 1, type 1, metaflags 1 (DBMETA_CHKSUM is 0x01).
	fv.Checksums = len(b) > 26 && b[26]&0x01 != 0
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		switch bo.Uint32(b[12:]) {
		case libdb.BtreeMagic:
			fv.Kind, fv.Version = "btree", bo.Uint32(b[16:])
			fv.Current = fv.Version == libdb.BtreeVersion
			return fv, nil
		case libdb.HashMagic:
			fv.Kind, fv.Version = "hash", bo.Uint32(b[16:])
			fv.Current = fv.Version == libdb.HashVersion
			return fv, nil
		}
	}
	return fv, fmt.Errorf("bdb: %s is not a Berkeley DB btree or hash database: %w", path, kv.ErrNotDB)
}

// LogNumber returns the number of a log file name ("log.0000000012" → 12),
// or 0 if name is not one.
func LogNumber(name string) int { return dbdir.LogNumber(name) }
