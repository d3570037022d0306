// Package dirlock owns the lock that makes one process the owner of a
// database directory, for both backends: who takes it, how, and the one
// "in use" error (wrapping kv.ErrInUse) every refused open returns.
//
// The lock is an flock on the directory's lock file, durusbdb.lock
// (created by writers), together with an flock of the same mode on the
// directory itself. flock locks belong to an open file description, so a
// second open in the same process is refused like one in another process
// (unlike LevelDB's own fcntl lock on LOCK, which the process loses when
// any of its descriptors of LOCK closes).
//
// The directory flock is what the LevelDB backend of the previous release
// took (and its only lock): taking it too keeps a LevelDB directory
// written by that release protected against one of its processes still
// running, and it protects a directory whose lock file a read-only open
// may not create (a read-only open writes nothing). Berkeley DB processes
// of the previous release took the flock on durusbdb.lock only, which is
// still taken, so they are excluded as well.
package dirlock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/durusbdb/durusbdb/kv"
)

// File is the name of the lock file in a database directory.
const File = "durusbdb.lock"

// Mode says how to take the lock.
type Mode int

const (
	// Write takes the lock exclusively and creates the lock file if it is
	// missing (opened read-write, so SetMark can write it): a writable
	// open, an offline tool that changes the directory.
	Write Mode = iota
	// Read takes the lock shared without creating the lock file: read-only
	// opens that may run side by side but never beside a writer.
	Read
	// ReadExclusive takes the lock exclusively without creating the lock
	// file: a reader that must be alone (LevelDB allows one process per
	// database) and must write nothing.
	ReadExclusive
)

// Lock is a held directory lock. Close releases it.
type Lock struct {
	path string   // the directory
	mode Mode     // how it was taken
	dir  *os.File // the directory, flocked
	file *os.File // the lock file, flocked; nil if it did not exist (Read, ReadExclusive)
}

// InUseError is the error of a lock held elsewhere: by a server, another
// process, or another open in this one. It wraps kv.ErrInUse.
type InUseError struct {
	Dir  string // the database directory
	Path string // its lock file
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("%s is in use: its lock %s is held by a running server or another process (or another open in this one)", e.Dir, e.Path)
}

// Unwrap makes errors.Is(err, kv.ErrInUse) hold.
func (e *InUseError) Unwrap() error { return kv.ErrInUse }

// Take takes the lock of dir in mode without waiting. A lock held
// elsewhere gives an *InUseError; nothing stays locked or open after an
// error.
func Take(dir string, mode Mode) (_ *Lock, err error) {
	path := filepath.Join(dir, File)
	how := syscall.LOCK_EX
	if mode == Read {
		how = syscall.LOCK_SH
	}
	l := &Lock{path: dir, mode: mode}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if mode == Write {
		l.file, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	} else {
		l.file, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			l.file, err = nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dirlock: lock %s: %w", dir, err)
	}
	if l.dir, err = os.Open(dir); err != nil {
		return nil, fmt.Errorf("dirlock: lock %s: %w", dir, err)
	}
	for _, f := range []*os.File{l.file, l.dir} {
		if f == nil {
			continue
		}
		if err := flock(f, how); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &InUseError{Dir: dir, Path: path}
			}
			return nil, fmt.Errorf("dirlock: lock %s: %w", f.Name(), err)
		}
	}
	return l, nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err != syscall.EINTR {
			return err
		}
	}
}

// SetMark replaces the content of the held lock file with mark and syncs
// it: a note for the next process that takes the lock (see ReadMark). It
// needs a lock taken in Write mode.
func (l *Lock) SetMark(mark string) error {
	if l.file == nil {
		return errors.New("dirlock: mark: the lock holds no lock file")
	}
	if err := l.file.Truncate(0); err != nil {
		return fmt.Errorf("dirlock: mark %s: %w", l.file.Name(), err)
	}
	if _, err := l.file.WriteAt([]byte(mark), 0); err != nil {
		return fmt.Errorf("dirlock: mark %s: %w", l.file.Name(), err)
	}
	if err := l.file.Sync(); err != nil {
		return fmt.Errorf("dirlock: mark %s: %w", l.file.Name(), err)
	}
	return nil
}

// ReadMark returns the mark the last SetMark left in dir's lock file ("" if
// there is none or no lock file).
func ReadMark(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("dirlock: read %s: %w", filepath.Join(dir, File), err)
	}
	return string(b), nil
}

// Retake takes a closed lock again, in the mode it was taken in (a reader
// that let go of its shared lock to do work under an exclusive one).
func (l *Lock) Retake() error {
	nl, err := Take(l.path, l.mode)
	if err != nil {
		return err
	}
	*l = *nl
	return nil
}

// Close releases the lock (closing the descriptors drops the flocks). It
// is safe on a nil Lock and more than once.
func (l *Lock) Close() error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, f := range []**os.File{&l.file, &l.dir} {
		if *f != nil {
			errs = append(errs, (*f).Close())
			*f = nil
		}
	}
	return errors.Join(errs...)
}
