// Package dbdir holds the one rule every layer applies to a database
// directory: which files may sit there besides a database's own, so that
// a directory holding only those is empty (a new database may be created
// in it) and anything else is a database or a foreign layout. backend
// (detection), bdb and leveldb (their open) share it, so no two of them
// disagree about whether a directory is empty.
package dbdir

import (
	"io/fs"
	"strings"
)

// Ignorable reports whether the directory entry named name, of type mode
// (fs.DirEntry.Type()), may sit in an empty database directory: dotfiles;
// unix sockets (the server binds its socket, and its control socket, before
// it opens the database); durusbdb's lock file; text logs next to it
// (*.log.txt); and the files of a Berkeley DB environment whose creation
// was interrupted before any database file existed (region files __db.*,
// log files log.NNNNNNNNNN, DB_CONFIG), which hold no data and which the
// next creation recovers and reuses.
func Ignorable(name string, mode fs.FileMode) bool {
	return mode&fs.ModeSocket != 0 || strings.HasPrefix(name, ".") ||
		name == "durusbdb.lock" || name == "durusbdb.sock" || strings.HasSuffix(name, ".log.txt") ||
		EnvFile(name)
}

// EnvFile reports whether name is a Berkeley DB environment file: a region
// file or the register (__db.*), a log file (log.NNNNNNNNNN) or DB_CONFIG.
func EnvFile(name string) bool {
	return strings.HasPrefix(name, "__db.") || name == "DB_CONFIG" || LogNumber(name) > 0
}

// LogNumber returns the number of the Berkeley DB log file name
// (log.NNNNNNNNNN, ten digits), or 0 if name is not one.
func LogNumber(name string) int {
	digits, ok := strings.CutPrefix(name, "log.")
	if !ok || len(digits) != 10 {
		return 0
	}
	n := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}
