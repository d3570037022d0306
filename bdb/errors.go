//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// sentinel is an error value that also matches its kv counterpart.
type sentinel struct {
	msg  string
	kv   error
	also error // a second kv error it matches, or nil
}

// Error returns the message.
func (e *sentinel) Error() string { return e.msg }

// Is makes errors.Is(e, kvErr) true for the kv counterpart.
func (e *sentinel) Is(target error) bool {
	return target != nil && (target == e.kv || target == e.also)
}

// Sentinel errors; test with errors.Is. Each also matches the kv error named
// in its comment.
var (
	// ErrNotFound: the key is not in the database (kv.ErrNotFound).
	ErrNotFound error = &sentinel{msg: "bdb: not found", kv: kv.ErrNotFound}
	// ErrKeyExists: PutNew found the key already present.
	ErrKeyExists error = &sentinel{msg: "bdb: key exists", kv: nil}
	// ErrDeadlock: the transaction was chosen as a deadlock victim; abort
	// and retry it (kv.ErrConflict).
	ErrDeadlock error = &sentinel{msg: "bdb: deadlock, transaction must be aborted and retried", kv: kv.ErrConflict}
	// ErrLockNotGranted: a lock could not be granted (lock timeout or no-wait
	// transaction); abort and retry (kv.ErrConflict).
	ErrLockNotGranted error = &sentinel{msg: "bdb: lock not granted, transaction must be aborted and retried", kv: kv.ErrConflict}
	// ErrRunRecovery: the environment panicked; close everything and reopen,
	// which runs recovery (kv.ErrNeedRecover).
	ErrRunRecovery error = &sentinel{msg: "bdb: environment needs recovery, close and reopen", kv: kv.ErrNeedRecover}
	// ErrChecksum: a page read from a file failed its checksum (files
	// created with page checksums, DBOptions.Checksum): the file is
	// damaged on disk, and libdb has panicked the environment. Reopening
	// recovers the environment but not the page: restore it (kv.ErrCorrupt
	// and kv.ErrNeedRecover).
	ErrChecksum error = &sentinel{msg: "bdb: a page failed its checksum: the file is damaged on disk", kv: kv.ErrCorrupt, also: kv.ErrNeedRecover}
	// ErrClosed: the Env, DB or Store was closed (kv.ErrClosed).
	ErrClosed error = &sentinel{msg: "bdb: closed", kv: kv.ErrClosed}
	// ErrTxnDone: the transaction already committed or aborted (kv.ErrTxnDone).
	ErrTxnDone error = &sentinel{msg: "bdb: transaction already committed or aborted", kv: kv.ErrTxnDone}
	// ErrReadOnly: a write on a read-only environment or transaction
	// (kv.ErrReadOnly).
	ErrReadOnly error = &sentinel{msg: "bdb: read-only", kv: kv.ErrReadOnly}
)

// Error is a failed operation: what it was (naming the file or directory),
// the sentinel it matches (may be nil) and the underlying cause (usually a
// *libdb.Error).
type Error struct {
	Op       string
	Sentinel error
	Err      error
}

// Error returns "bdb: Op: cause".
func (e *Error) Error() string {
	return "bdb: " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the sentinel (if any) and the cause.
func (e *Error) Unwrap() []error {
	if e.Sentinel == nil {
		return []error{e.Err}
	}
	return []error{e.Sentinel, e.Err}
}

// Is reports whether target is the sentinel e matches (or one that
// sentinel matches, such as kv.ErrNotFound), so that errors.Is answers
// without Unwrap building a slice.
func (e *Error) Is(target error) bool {
	return e.Sentinel != nil && (e.Sentinel == target || errors.Is(e.Sentinel, target))
}

// getNotFound is the error of a get from file that finds no key, as wrap
// would build it from libdb's DB_NOTFOUND; DB keeps one per handle.
func getNotFound(file string) error {
	return wrap("get from "+file, &libdb.Error{Op: "DB->get", Code: int(libdb.ErrNotFound)})
}

// Code returns the libdb return code carried by err (negative: libdb's
// own, positive: errno), or 0.
func Code(err error) int { return libdb.Code(err) }

// envError is wrap for a failure of the environment handle le, with
// libdb's last message for it, which often says more than the code (or,
// once libdb has panicked le, its reason: see panicError).
func envError(le *libdb.Env, op string, err error) error {
	if pe := panicError(le, op, err); pe != nil {
		return pe
	}
	e := wrap(op, err)
	if msg := le.LastError(); msg != "" {
		e = fmt.Errorf("%w (libdb: %s)", e, msg)
	}
	return e
}

// dataErr is wrap for a failed read or write of one of e's database
// files, with libdb's message for a full region (ENOMEM) and its reason
// once it has panicked the environment (see panicError).
func (e *Env) dataErr(op string, err error) error {
	switch {
	case e.env == nil:
		return wrap(op, err)
	case libdb.Code(err) == int(syscall.ENOMEM):
		// Which region is full ("unable to allocate space from the buffer
		// cache"), in libdb's words.
		return envError(e.env, op, err)
	}
	if pe := panicError(e.env, op, err); pe != nil {
		return pe
	}
	return wrap(op, err)
}

// panicError is the error of op for err, a DB_RUNRECOVERY of environment
// le, when libdb said why it panicked le: its reason, and for a page that
// failed its checksum, ErrChecksum (the file is damaged on disk: recovery
// does not mend it). Otherwise it returns nil.
func panicError(le *libdb.Env, op string, err error) error {
	if libdb.Code(err) != int(libdb.ErrRunRecovery) {
		return nil
	}
	cause := le.PanicCause()
	switch {
	case cause == "":
		return nil
	case strings.Contains(cause, "checksum error"):
		return &Error{Op: op + ": a page failed its checksum (damaged on disk; libdb: " + cause + ")", Sentinel: ErrChecksum, Err: err}
	default:
		return wrap(op+" (libdb: "+cause+")", err)
	}
}

// wrap converts an error of the libdb binding into an *Error naming op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var s error
	switch libdb.Code(err) {
	case int(libdb.ErrNotFound):
		s = ErrNotFound
	case int(libdb.ErrKeyExist):
		s = ErrKeyExists
	case int(libdb.ErrLockDeadlock):
		s = ErrDeadlock
	case int(libdb.ErrLockNotGranted):
		s = ErrLockNotGranted
	case int(libdb.ErrRunRecovery):
		s = ErrRunRecovery
	case int(libdb.ErrVerifyBad), int(libdb.ErrPageNotFound):
		s = kv.ErrCorrupt
	case int(syscall.ENOSPC), int(syscall.EDQUOT):
		s = kv.ErrNoSpace
	case int(syscall.ENOMEM):
		// libdb's regions (cache, lock and transaction tables) are fixed
		// at open: ENOMEM is one of them full, not the process's memory.
		s = kv.ErrCacheFull
	}
	if s == nil {
		s = replSentinel(err)
	}
	return &Error{Op: op, Sentinel: s, Err: err}
}

// opErr builds an error for op that matches s and names cause.
func opErr(op string, s error, cause error) error {
	if cause == nil {
		cause = errors.New(s.Error())
	}
	return &Error{Op: op, Sentinel: s, Err: cause}
}

func errf(format string, args ...any) error { return fmt.Errorf("bdb: "+format, args...) }
