// Package libdb is a thin, one-to-one cgo binding of Berkeley DB 5.3
// (Debian's libdb5.3-dev, linked with -ldb). It is the only package of
// durusbdb that imports "C", and it is compiled only with the build tag
// "bdb"; without the tag the package is empty.
//
// The binding adds no policy: each method calls one libdb method and
// returns its result. Ownership, sentinel errors and safe concurrent
// shutdown live in package bdb, which is what other packages use.
//
// Memory rules (docs STYLE.md §2): Go memory goes to C only as flat
// (char *, size_t) arguments; the C wrappers in libdbgo.c build every DBT on
// their own stack and keep no pointer to Go memory after returning. Reads
// use DB_DBT_USERMEM into Go buffers and retry on DB_BUFFER_SMALL, so no C
// memory reaches Go. An empty slice is passed as a nil pointer.
//
// Handles: Env and DB are free-threaded when opened with Thread
// (DB_THREAD). A Txn and its Cursors may move between goroutines, but only
// one goroutine may use them at a time. After Close, Commit or Abort a
// handle's pointer is cleared and later calls return an *Error with
// syscall.EINVAL instead of touching freed memory; concurrent use of a
// handle with its own close is still a caller bug.
//
// Two process-wide hooks are the exception to "no policy", both for the
// Replication Manager: connect() and accept() are interposed to set
// TCP_NODELAY on repmgr's sockets (SetTCPNoDelay, repmgrgo.c), and the
// first AttachEvents installs a yield function (db_env_set_func_yield,
// repmgr_wake.c) under which libdb's replication-lockout sleeps end when
// the lockout does instead of after a fixed 1 or 5 s.
//
// Errors are *Error values naming the libdb method ("DB->get") and the
// return code. Negative codes are libdb's own (type Errno, text from
// db_strerror); positive codes are system errors and unwrap to
// syscall.Errno, so errors.Is(err, syscall.ENOSPC) works.
package libdb
