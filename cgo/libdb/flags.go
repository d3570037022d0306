//go:build bdb

package libdb

/*
#include "libdbgo.h"
*/
import "C"

// Flags of libdb 5.3, named after their DB_ constants without the prefix.
const (
	// DB_ENV->open
	Create       uint32 = C.DB_CREATE        // DB_CREATE
	InitTxn      uint32 = C.DB_INIT_TXN      // DB_INIT_TXN
	InitLog      uint32 = C.DB_INIT_LOG      // DB_INIT_LOG
	InitLock     uint32 = C.DB_INIT_LOCK     // DB_INIT_LOCK
	InitMpool    uint32 = C.DB_INIT_MPOOL    // DB_INIT_MPOOL
	Thread       uint32 = C.DB_THREAD        // DB_THREAD
	Recover      uint32 = C.DB_RECOVER       // DB_RECOVER
	RecoverFatal uint32 = C.DB_RECOVER_FATAL // DB_RECOVER_FATAL
	Register     uint32 = C.DB_REGISTER      // DB_REGISTER
	Private      uint32 = C.DB_PRIVATE       // DB_PRIVATE
	UseEnviron   uint32 = C.DB_USE_ENVIRON   // DB_USE_ENVIRON

	// DB_ENV->set_flags
	TxnNoSync      uint32 = C.DB_TXN_NOSYNC        // DB_TXN_NOSYNC (also DB_TXN->commit)
	TxnWriteNoSync uint32 = C.DB_TXN_WRITE_NOSYNC  // DB_TXN_WRITE_NOSYNC (also DB_TXN->commit)
	Multiversion   uint32 = C.DB_MULTIVERSION      // DB_MULTIVERSION (also DB->open)
	TxnNoWait      uint32 = C.DB_TXN_NOWAIT        // DB_TXN_NOWAIT (also DB_ENV->txn_begin)
	PanicEnv       uint32 = C.DB_PANIC_ENVIRONMENT // DB_PANIC_ENVIRONMENT: every process's next call fails DB_RUNRECOVERY
	RegionInit     uint32 = C.DB_REGION_INIT       // DB_REGION_INIT: region files written in full (disk allocated) when created

	// DB_ENV->set_lk_detect
	LockDefault  uint32 = C.DB_LOCK_DEFAULT  // DB_LOCK_DEFAULT
	LockYoungest uint32 = C.DB_LOCK_YOUNGEST // DB_LOCK_YOUNGEST
	LockOldest   uint32 = C.DB_LOCK_OLDEST   // DB_LOCK_OLDEST
	LockMinWrite uint32 = C.DB_LOCK_MINWRITE // DB_LOCK_MINWRITE

	// DB_ENV->log_archive
	ArchAbs    uint32 = C.DB_ARCH_ABS    // DB_ARCH_ABS
	ArchData   uint32 = C.DB_ARCH_DATA   // DB_ARCH_DATA
	ArchLog    uint32 = C.DB_ARCH_LOG    // DB_ARCH_LOG
	ArchRemove uint32 = C.DB_ARCH_REMOVE // DB_ARCH_REMOVE

	// DB_ENV->txn_checkpoint
	Force uint32 = C.DB_FORCE // DB_FORCE

	// DB_ENV->close, DB->close
	NoSync uint32 = C.DB_NOSYNC // DB_NOSYNC: DB->close without flushing

	// DB->set_flags
	Chksum uint32 = C.DB_CHKSUM // DB_CHKSUM: page checksums, set when the file is created

	// DB->open
	RdOnly     uint32 = C.DB_RDONLY      // DB_RDONLY
	AutoCommit uint32 = C.DB_AUTO_COMMIT // DB_AUTO_COMMIT
	Excl       uint32 = C.DB_EXCL        // DB_EXCL
	Truncate   uint32 = C.DB_TRUNCATE    // DB_TRUNCATE

	// DB_ENV->txn_begin, DB->get, DB->cursor
	TxnSnapshot     uint32 = C.DB_TXN_SNAPSHOT     // DB_TXN_SNAPSHOT
	TxnSync         uint32 = C.DB_TXN_SYNC         // DB_TXN_SYNC (DB_TXN->commit)
	TxnBulk         uint32 = C.DB_TXN_BULK         // DB_TXN_BULK
	ReadCommitted   uint32 = C.DB_READ_COMMITTED   // DB_READ_COMMITTED
	ReadUncommitted uint32 = C.DB_READ_UNCOMMITTED // DB_READ_UNCOMMITTED
	RMW             uint32 = C.DB_RMW              // DB_RMW

	// DB->put, DBC->put
	NoOverwrite uint32 = C.DB_NOOVERWRITE // DB_NOOVERWRITE
	KeyFirst    uint32 = C.DB_KEYFIRST    // DB_KEYFIRST

	// DBC->get
	First    uint32 = C.DB_FIRST     // DB_FIRST
	Last     uint32 = C.DB_LAST      // DB_LAST
	Next     uint32 = C.DB_NEXT      // DB_NEXT
	Prev     uint32 = C.DB_PREV      // DB_PREV
	Current  uint32 = C.DB_CURRENT   // DB_CURRENT
	Set      uint32 = C.DB_SET       // DB_SET
	SetRange uint32 = C.DB_SET_RANGE // DB_SET_RANGE

	// DB->stat
	FastStat uint32 = C.DB_FAST_STAT // DB_FAST_STAT

	// DB->verify
	NoOrderChk uint32 = C.DB_NOORDERCHK // DB_NOORDERCHK
)

// DBType is a database access method (DBTYPE).
type DBType int

// Access methods.
const (
	Btree   DBType = C.DB_BTREE   // DB_BTREE
	Hash    DBType = C.DB_HASH    // DB_HASH
	Recno   DBType = C.DB_RECNO   // DB_RECNO
	Queue   DBType = C.DB_QUEUE   // DB_QUEUE
	Unknown DBType = C.DB_UNKNOWN // DB_UNKNOWN: take the type from the existing file
)

// String returns "btree", "hash", "recno", "queue" or "unknown".
func (t DBType) String() string {
	switch t {
	case Btree:
		return "btree"
	case Hash:
		return "hash"
	case Recno:
		return "recno"
	case Queue:
		return "queue"
	}
	return "unknown"
}

// Version returns the libdb version string (db_version).
func Version() string {
	return C.GoString(C.db_version(nil, nil, nil))
}
