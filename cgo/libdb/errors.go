//go:build bdb

package libdb

/*
#include "libdbgo.h"
*/
import "C"

import (
	"errors"
	"strconv"
	"syscall"
)

// Errno is a libdb-specific return code (always negative), such as
// ErrNotFound (DB_NOTFOUND). Its text comes from db_strerror.
type Errno int

// Error returns db_strerror's text for the code.
func (e Errno) Error() string { return Strerror(int(e)) }

// libdb return codes.
const (
	ErrBufferSmall     Errno = C.DB_BUFFER_SMALL     // DB_BUFFER_SMALL: user memory too small
	ErrKeyEmpty        Errno = C.DB_KEYEMPTY         // DB_KEYEMPTY
	ErrKeyExist        Errno = C.DB_KEYEXIST         // DB_KEYEXIST: key/data pair already exists
	ErrLockDeadlock    Errno = C.DB_LOCK_DEADLOCK    // DB_LOCK_DEADLOCK: chosen as deadlock victim
	ErrLockNotGranted  Errno = C.DB_LOCK_NOTGRANTED  // DB_LOCK_NOTGRANTED: lock unavailable (timeout or no-wait)
	ErrNotFound        Errno = C.DB_NOTFOUND         // DB_NOTFOUND: key/data pair not found
	ErrOldVersion      Errno = C.DB_OLD_VERSION      // DB_OLD_VERSION: database needs upgrade
	ErrPageNotFound    Errno = C.DB_PAGE_NOTFOUND    // DB_PAGE_NOTFOUND: requested page not found
	ErrRunRecovery     Errno = C.DB_RUNRECOVERY      // DB_RUNRECOVERY: fatal error, run recovery
	ErrVerifyBad       Errno = C.DB_VERIFY_BAD       // DB_VERIFY_BAD: verify failed
	ErrVersionMismatch Errno = C.DB_VERSION_MISMATCH // DB_VERSION_MISMATCH: environment version mismatch
)

// Error is a failed libdb call: Op names the method ("DB->get") and Code is
// its return value. Unwrap returns an Errno for negative codes and a
// syscall.Errno for positive ones.
type Error struct {
	Op   string
	Code int
}

// Error returns "Op: db_strerror(Code)".
func (e *Error) Error() string {
	return e.Op + ": " + Strerror(e.Code)
}

// Unwrap returns the code as Errno (libdb codes) or syscall.Errno.
func (e *Error) Unwrap() error {
	if e.Code > 0 {
		return syscall.Errno(e.Code)
	}
	return Errno(e.Code)
}

// Code returns the libdb return code carried by err, or 0 when err holds no
// *Error.
func Code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Strerror returns db_strerror's text for a libdb or system code.
func Strerror(code int) string {
	var buf [256]C.char
	n := C.dbgo_strerror_copy(C.int(code), &buf[0], C.size_t(len(buf)))
	if n <= 0 {
		return "libdb error " + strconv.Itoa(code)
	}
	return C.GoStringN(&buf[0], n)
}

func newError(op string, rc C.int) error {
	return &Error{Op: op, Code: int(rc)}
}

// errInvalid reports a call on a closed (nil) handle.
func errInvalid(op string) error {
	return &Error{Op: op, Code: int(syscall.EINVAL)}
}
