package filestorage

import (
	"errors"
	"os"
	"syscall"
)

// errWouldBlock: another process holds a conflicting flock.
var errWouldBlock = errors.New("lock held by another process")

// lockShared takes flock(LOCK_SH|LOCK_NB), as a reader that must not run
// alongside a Durus writer (which holds LOCK_EX on the data file).
func lockShared(f *os.File) error { return flock(f, syscall.LOCK_SH|syscall.LOCK_NB) }

// lockExclusive takes flock(LOCK_EX|LOCK_NB), as Durus writers do.
func lockExclusive(f *os.File) error { return flock(f, syscall.LOCK_EX|syscall.LOCK_NB) }

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errWouldBlock
		}
		return err
	}
}
