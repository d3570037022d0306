//go:build bdb

package recovery

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// memfdFile makes an anonymous file in memory (memfd_create) and returns
// it with a path that opens it again (/proc/self/fd/N), or false where
// either is not available.
func memfdFile(name string) (*os.File, string, bool) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, "", false
	}
	f := os.NewFile(uintptr(fd), name)
	path := fmt.Sprintf("/proc/self/fd/%d", fd)
	if _, err := os.Stat(path); err != nil {
		f.Close()
		return nil, "", false
	}
	return f, path, true
}
