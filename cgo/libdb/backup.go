//go:build bdb

package libdb

/*
#include "backupgo.h"
*/
import "C"

import (
	"syscall"
	"unsafe"
)

// Flags and constants of the backup, recovery and upgrade calls.
const (
	// DB_ENV->backup
	BackupClean     uint32 = C.DB_BACKUP_CLEAN      // DB_BACKUP_CLEAN: empty the target first
	BackupFiles     uint32 = C.DB_BACKUP_FILES      // DB_BACKUP_FILES: also copy non-database files
	BackupNoLogs    uint32 = C.DB_BACKUP_NO_LOGS    // DB_BACKUP_NO_LOGS: database files only
	BackupSingleDir uint32 = C.DB_BACKUP_SINGLE_DIR // DB_BACKUP_SINGLE_DIR: everything in the target itself
	BackupUpdate    uint32 = C.DB_BACKUP_UPDATE     // DB_BACKUP_UPDATE: incremental (logs only)

	// DB_ENV->set_verbose
	VerbBackup   uint32 = C.DB_VERB_BACKUP   // DB_VERB_BACKUP
	VerbFileops  uint32 = C.DB_VERB_FILEOPS  // DB_VERB_FILEOPS
	VerbRecovery uint32 = C.DB_VERB_RECOVERY // DB_VERB_RECOVERY
	VerbRegister uint32 = C.DB_VERB_REGISTER // DB_VERB_REGISTER

	// On-disk versions this libdb writes, and the magic numbers that
	// identify a log file (in its first record) and btree / hash
	// database files (offset 12 of the meta page; the version follows at
	// offset 16).
	LogMagic     uint32 = C.DB_LOGMAGIC     // DB_LOGMAGIC
	LogVersion   uint32 = C.DB_LOGVERSION   // DB_LOGVERSION (19 for 5.3)
	BtreeMagic   uint32 = C.DB_BTREEMAGIC   // DB_BTREEMAGIC
	BtreeVersion uint32 = C.DB_BTREEVERSION // DB_BTREEVERSION
	HashMagic    uint32 = C.DB_HASHMAGIC    // DB_HASHMAGIC
	HashVersion  uint32 = C.DB_HASHVERSION  // DB_HASHVERSION
)

// DBBackup copies one database file of the environment into the target
// directory page by page, coordinated with the cache so that no page is
// copied while it is being written (a "page-safe" hot copy); flags may be
// Excl. The environment may be shared with other processes that keep
// writing. See DB_ENV->dbbackup.
func (e *Env) DBBackup(file, target string, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->dbbackup")
	}
	f, t := cstr(file), cstr(target)
	defer C.free(unsafe.Pointer(f))
	defer C.free(unsafe.Pointer(t))
	if rc := C.dbgo_env_dbbackup(e.p, f, t, C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->dbbackup", rc)
	}
	return nil
}

// Backup copies every database file and then every log file of the
// environment into target (flags: Create, Excl, BackupClean,
// BackupSingleDir, BackupUpdate, ...). See DB_ENV->backup.
func (e *Env) Backup(target string, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->backup")
	}
	t := cstr(target)
	defer C.free(unsafe.Pointer(t))
	if rc := C.dbgo_env_backup(e.p, t, C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->backup", rc)
	}
	return nil
}

// LSNReset resets the LSNs of every page of file (relative to the
// environment home) to zero, so that it can be used in an environment
// without the logs it was written with. See DB_ENV->lsn_reset.
func (e *Env) LSNReset(file string, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB_ENV->lsn_reset")
	}
	f := cstr(file)
	defer C.free(unsafe.Pointer(f))
	if rc := C.dbgo_env_lsn_reset(e.p, f, C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->lsn_reset", rc)
	}
	return nil
}

// SetVerbose turns verbose messages (VerbRecovery, VerbBackup, ...) on or
// off; they go to the message file (SetMsgFile). See DB_ENV->set_verbose.
func (e *Env) SetVerbose(which uint32, on bool) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_verbose")
	}
	if rc := C.dbgo_env_set_verbose(e.p, C.u_int32_t(which), cbool(on)); rc != 0 {
		return newError("DB_ENV->set_verbose", rc)
	}
	return nil
}

// MsgFile is a C stdio stream (line buffered) that libdb writes its
// informational messages to. Close it after the environment using it is
// closed.
type MsgFile struct {
	p *C.FILE
}

// OpenMsgFile opens path for appending as a message file.
func OpenMsgFile(path string) (*MsgFile, error) {
	cp := cstr(path)
	defer C.free(unsafe.Pointer(cp))
	var errno C.int
	f := C.dbgo_msgfile_open(cp, &errno)
	if f == nil {
		return nil, &Error{Op: "fopen " + path, Code: int(errno)}
	}
	return &MsgFile{p: f}, nil
}

// Close closes the stream; later calls return an EINVAL *Error.
func (m *MsgFile) Close() error {
	if m == nil || m.p == nil {
		return &Error{Op: "fclose", Code: int(syscall.EINVAL)}
	}
	p := m.p
	m.p = nil
	if rc := C.dbgo_msgfile_close(p); rc != 0 {
		return newError("fclose", rc)
	}
	return nil
}

// SetMsgFile sends libdb's informational messages (verbose output) to m,
// or nowhere when m is nil. m must stay open until the environment is
// closed. See DB_ENV->set_msgfile.
func (e *Env) SetMsgFile(m *MsgFile) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_msgfile")
	}
	var f *C.FILE
	if m != nil {
		f = m.p
	}
	C.dbgo_env_set_msgfile(e.p, f)
	return nil
}

// Upgrade upgrades the database file (relative to the environment home) in
// place to this libdb's on-disk format, with a fresh DB handle; a file
// already current is left unchanged. The file must not be open anywhere.
// See DB->upgrade.
func (e *Env) Upgrade(file string, flags uint32) error {
	if e.p == nil {
		return errInvalid("DB->upgrade")
	}
	f := cstr(file)
	defer C.free(unsafe.Pointer(f))
	if rc := C.dbgo_db_upgrade(e.p, f, C.u_int32_t(flags)); rc != 0 {
		return newError("DB->upgrade", rc)
	}
	return nil
}

// EnvRemove removes the region files (__db.00N) of the environment in
// home, which no process may be using (with Force: even if one seems to).
// Database and log files are left alone. See DB_ENV->remove.
func EnvRemove(home string, flags uint32) error {
	h := cstr(home)
	defer C.free(unsafe.Pointer(h))
	if rc := C.dbgo_env_remove(h, C.u_int32_t(flags)); rc != 0 {
		return newError("DB_ENV->remove", rc)
	}
	return nil
}
