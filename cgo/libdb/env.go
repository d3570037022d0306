//go:build bdb

package libdb

/*
#cgo LDFLAGS: -ldb
#cgo noescape dbgo_db_get
#cgo nocallback dbgo_db_get
#cgo noescape dbgo_db_put
#cgo nocallback dbgo_db_put
#cgo noescape dbgo_db_del
#cgo nocallback dbgo_db_del
#cgo noescape dbgo_txn_begin
#cgo nocallback dbgo_txn_begin
#cgo noescape dbgo_txn_commit
#cgo nocallback dbgo_txn_commit
#cgo noescape dbgo_txn_abort
#cgo nocallback dbgo_txn_abort
#cgo noescape dbgo_db_cursor
#cgo nocallback dbgo_db_cursor
#cgo noescape dbgo_dbc_get
#cgo nocallback dbgo_dbc_get
#cgo noescape dbgo_dbc_get_multiple_key
#cgo nocallback dbgo_dbc_get_multiple_key
#cgo noescape dbgo_dbc_put
#cgo nocallback dbgo_dbc_put
#cgo noescape dbgo_dbc_del
#cgo nocallback dbgo_dbc_del
#cgo noescape dbgo_dbc_close
#cgo nocallback dbgo_dbc_close
#include "libdbgo.h"
*/
import "C"

import (
	"strings"
	"unsafe"
)

// Env is a DB_ENV handle. Create it with EnvCreate, configure it, then Open
// it; Close it exactly once, even after a failed Open (libdb requires it).
type Env struct {
	p *C.DB_ENV
}

// EnvCreate allocates an environment handle that records libdb's last
// error message (see LastError). See db_env_create.
func EnvCreate() (*Env, error) {
	var p *C.DB_ENV
	if rc := C.dbgo_env_create(&p); rc != 0 {
		return nil, newError("db_env_create", rc)
	}
	if rc := C.dbgo_env_capture_errors(p); rc != 0 {
		C.dbgo_env_close(p, 0)
		return nil, newError("DB_ENV->set_errcall", rc)
	}
	return &Env{p: p}, nil
}

func cstr(s string) *C.char { return C.CString(s) }

// Open opens the environment in home with flags (Create, InitTxn, ...)
// and file mode (0 means 0660). See DB_ENV->open.
func (e *Env) Open(home string, flags uint32, mode int) error {
	if e.p == nil {
		return errInvalid("DB_ENV->open")
	}
	h := cstr(home)
	defer C.free(unsafe.Pointer(h))
	if rc := C.dbgo_env_open(e.p, h, C.u_int32_t(flags), C.int(mode)); rc != 0 {
		return newError("DB_ENV->open", rc)
	}
	return nil
}

// Close closes the environment; the handle is dead afterwards whatever the
// result. Every DB, Txn and Cursor of it must be closed first. See
// DB_ENV->close.
func (e *Env) Close(flags uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->close")
	}
	p := e.p
	e.p = nil
	if rc := C.dbgo_env_close(p, C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->close", rc)
	}
	return nil
}

// LastError returns the last message libdb reported through the error
// callback of this environment (any goroutine), or "".
func (e *Env) LastError() string {
	if e.p == nil {
		return ""
	}
	return e.lastError(0)
}

// PanicCause returns the message libdb reported just before it first
// panicked this environment (what went wrong, such as "checksum error:
// page 7: catastrophic recovery required"; the "PANIC" message that
// follows only says that recovery is needed), or "" if it has not panicked
// or said nothing before.
func (e *Env) PanicCause() string {
	if e.p == nil {
		return ""
	}
	return e.lastError(1)
}

func (e *Env) lastError(cause C.int) string {
	var buf [1024]C.char
	n := C.dbgo_env_last_error(e.p, cause, &buf[0], C.size_t(len(buf)))
	return C.GoStringN(&buf[0], C.int(n))
}

// SetCacheSize sets the cache size in bytes, in ncache regions. See
// DB_ENV->set_cachesize.
func (e *Env) SetCacheSize(bytes int64, ncache int) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_cachesize")
	}
	g := C.u_int32_t(bytes >> 30)
	b := C.u_int32_t(bytes & (1<<30 - 1))
	if rc := C.dbgo_env_set_cachesize(e.p, g, b, C.int(ncache)); rc != 0 {
		return newError("DB_ENV->set_cachesize", rc)
	}
	return nil
}

// SetLkDetect sets the deadlock detection policy (LockDefault, ...). See
// DB_ENV->set_lk_detect.
func (e *Env) SetLkDetect(mode uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_lk_detect")
	}
	if rc := C.dbgo_env_set_lk_detect(e.p, C.u_int32_t(mode)); rc != 0 {
		return newError("DB_ENV->set_lk_detect", rc)
	}
	return nil
}

// SetLkMax sets the maximum number of locks, lockers and lock objects; a
// zero leaves that one at libdb's default. See DB_ENV->set_lk_max_locks,
// set_lk_max_lockers, set_lk_max_objects.
func (e *Env) SetLkMax(locks, lockers, objects uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_lk_max_locks")
	}
	if rc := C.dbgo_env_set_lk_max(e.p, C.u_int32_t(locks), C.u_int32_t(lockers), C.u_int32_t(objects)); rc != 0 {
		return newError("DB_ENV->set_lk_max_locks", rc)
	}
	return nil
}

// SetTxMax sets the number of concurrently active transactions the region
// is sized for. See DB_ENV->set_tx_max.
func (e *Env) SetTxMax(n uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_tx_max")
	}
	if rc := C.dbgo_env_set_tx_max(e.p, C.u_int32_t(n)); rc != 0 {
		return newError("DB_ENV->set_tx_max", rc)
	}
	return nil
}

// SetFlags turns environment flags (TxnNoSync, TxnWriteNoSync,
// Multiversion, ...) on or off. See DB_ENV->set_flags.
func (e *Env) SetFlags(flags uint32, on bool) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_flags")
	}
	if rc := C.dbgo_env_set_flags(e.p, C.u_int32_t(flags), cbool(on)); rc != 0 {
		return newError("DB_ENV->set_flags", rc)
	}
	return nil
}

// TxnCheckpoint writes a checkpoint if kbyte KiB of log or min minutes have
// passed since the last one (both 0: always), or always with Force. See
// DB_ENV->txn_checkpoint.
func (e *Env) TxnCheckpoint(kbyte, min, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->txn_checkpoint")
	}
	if rc := C.dbgo_env_txn_checkpoint(e.p, C.u_int32_t(kbyte), C.u_int32_t(min), C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->txn_checkpoint", rc)
	}
	return nil
}

// MempTrickle writes dirty pages of the cache to their files (without
// fsync) until pct percent of its pages are clean, and returns how many it
// wrote. See DB_ENV->memp_trickle.
func (e *Env) MempTrickle(pct int) (int, error) {
	if e.p == nil {
		return 0, errInvalid("DB_ENV->memp_trickle")
	}
	var n C.int
	if rc := C.dbgo_env_memp_trickle(e.p, C.int(pct), &n); rc != 0 {
		return 0, newError("DB_ENV->memp_trickle", rc)
	}
	return int(n), nil
}

// LogArchive lists log files no longer needed (flags 0), database files
// (ArchData), all log files (ArchLog), with absolute paths (ArchAbs), or
// removes the unneeded log files (ArchRemove, returning nil). See
// DB_ENV->log_archive.
func (e *Env) LogArchive(flags uint32) ([]string, error) {
	if e.p == nil {
		return nil, errInvalid("DB_ENV->log_archive")
	}
	buf := make([]byte, 4096)
	for {
		var need C.size_t
		rc := C.dbgo_env_log_archive(e.p, C.u_int32_t(flags), cptr(buf), C.size_t(len(buf)), &need)
		if rc != 0 {
			return nil, newError("DB_ENV->log_archive", rc)
		}
		if int(need) > len(buf) {
			buf = make([]byte, int(need))
			continue
		}
		if need == 0 {
			return nil, nil
		}
		return strings.Split(string(buf[:need-1]), "\x00"), nil
	}
}

// LogFlush writes and syncs the whole log (DB_ENV->log_flush with a NULL
// LSN). See DB_ENV->log_flush.
func (e *Env) LogFlush() error {
	if e.p == nil {
		return errInvalid("DB_ENV->log_flush")
	}
	if rc := C.dbgo_env_log_flush(e.p); rc != 0 {
		return newError("DB_ENV->log_flush", rc)
	}
	return nil
}

// TxnStat holds transaction subsystem statistics. See DB_ENV->txn_stat.
type TxnStat struct {
	LastCkpFile, LastCkpOffset uint32 // LSN of the last checkpoint
	TimeCkp                    int64  // Unix time of the last checkpoint
	LastTxnID                  uint32
	MaxTxns                    uint32 // transactions the region can hold
	NActive, NSnapshot         uint32
	MaxNActive                 uint32
	NAborts, NBegins, NCommits uint64
}

// TxnStat returns transaction statistics. See DB_ENV->txn_stat.
func (e *Env) TxnStat() (TxnStat, error) {
	if e.p == nil {
		return TxnStat{}, errInvalid("DB_ENV->txn_stat")
	}
	var s C.dbgo_txn_stat_t
	if rc := C.dbgo_env_txn_stat(e.p, &s); rc != 0 {
		return TxnStat{}, newError("DB_ENV->txn_stat", rc)
	}
	return TxnStat{
		LastCkpFile: uint32(s.last_ckp_file), LastCkpOffset: uint32(s.last_ckp_offset),
		TimeCkp: int64(s.time_ckp), LastTxnID: uint32(s.last_txnid), MaxTxns: uint32(s.maxtxns),
		NActive: uint32(s.nactive), NSnapshot: uint32(s.nsnapshot), MaxNActive: uint32(s.maxnactive),
		NAborts: uint64(s.naborts), NBegins: uint64(s.nbegins), NCommits: uint64(s.ncommits),
	}, nil
}

// LogStat holds log subsystem statistics. See DB_ENV->log_stat.
type LogStat struct {
	BufferSize, FileSize   uint32
	WBytes, WMbytes        uint32 // written since the region was created
	WcBytes, WcMbytes      uint32 // written since the last checkpoint
	CurFile, CurOffset     uint32 // end of the log
	DiskFile, DiskOffset   uint32 // end of the log known on disk
	Records, Writes, Fills uint64
	Syncs                  uint64
}

// LogStat returns log statistics. See DB_ENV->log_stat.
func (e *Env) LogStat() (LogStat, error) {
	if e.p == nil {
		return LogStat{}, errInvalid("DB_ENV->log_stat")
	}
	var s C.dbgo_log_stat_t
	if rc := C.dbgo_env_log_stat(e.p, &s); rc != 0 {
		return LogStat{}, newError("DB_ENV->log_stat", rc)
	}
	return LogStat{
		BufferSize: uint32(s.lg_bsize), FileSize: uint32(s.lg_size),
		WBytes: uint32(s.w_bytes), WMbytes: uint32(s.w_mbytes),
		WcBytes: uint32(s.wc_bytes), WcMbytes: uint32(s.wc_mbytes),
		CurFile: uint32(s.cur_file), CurOffset: uint32(s.cur_offset),
		DiskFile: uint32(s.disk_file), DiskOffset: uint32(s.disk_offset),
		Records: uint64(s.record), Writes: uint64(s.wcount), Fills: uint64(s.wcount_fill),
		Syncs: uint64(s.scount),
	}, nil
}

// MpoolStat holds cache statistics. See DB_ENV->memp_stat.
type MpoolStat struct {
	CacheBytes                      int64 // configured cache size
	NCache                          uint32
	Pages, PagesClean, PagesDirty   uint32
	Hits, Misses                    uint64
	PagesCreated, PagesIn, PagesOut uint64
	CleanEvictions, DirtyEvictions  uint64
}

// MpoolStat returns cache statistics. See DB_ENV->memp_stat.
func (e *Env) MpoolStat() (MpoolStat, error) {
	if e.p == nil {
		return MpoolStat{}, errInvalid("DB_ENV->memp_stat")
	}
	var s C.dbgo_mpool_stat_t
	if rc := C.dbgo_env_memp_stat(e.p, &s); rc != 0 {
		return MpoolStat{}, newError("DB_ENV->memp_stat", rc)
	}
	return MpoolStat{
		CacheBytes: int64(s.gbytes)<<30 + int64(s.bytes), NCache: uint32(s.ncache),
		Pages: uint32(s.pages), PagesClean: uint32(s.page_clean), PagesDirty: uint32(s.page_dirty),
		Hits: uint64(s.cache_hit), Misses: uint64(s.cache_miss),
		PagesCreated: uint64(s.page_create), PagesIn: uint64(s.page_in), PagesOut: uint64(s.page_out),
		CleanEvictions: uint64(s.ro_evict), DirtyEvictions: uint64(s.rw_evict),
	}, nil
}

// Verify checks the structure of the database file (relative to the
// environment home) with a fresh handle. See DB->verify.
func (e *Env) Verify(file string, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB->verify")
	}
	f := cstr(file)
	defer C.free(unsafe.Pointer(f))
	if rc := C.dbgo_db_verify(e.p, f, C.u_int32_t(flags)); rc != 0 {
		return newError("DB->verify", rc)
	}
	return nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cptr returns a pointer to b's first byte, or nil when b is empty.
func cptr(b []byte) *C.char {
	if len(b) == 0 {
		return nil
	}
	return (*C.char)(unsafe.Pointer(&b[0]))
}
