//go:build bdb

package bdb

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/durusbdb/durusbdb/kv"
	"golang.org/x/sys/unix"
)

// regionFiles lists the environment's region files in dir (__db.001 …).
func regionFiles(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "__db.[0-9][0-9][0-9]"))
}

// backRegions allocates disk blocks for every page libdb may touch in the
// environment's region files (__db.001 …). libdb memory-maps each region
// at its largest size but writes the file only as far as the region has
// grown, and grows it sparse (__db_file_extend writes its last byte); on
// a full file system the first write to an unbacked page raises SIGBUS
// and kills the process, which no error path can catch. So every file is
// backed up to the length this process mapped it with (read from
// /proc/self/maps; its size where that cannot be read), keeping its size:
// libdb checks a joined region file's size against the region's. With
// every page backed, a full disk can only fail file writes, which libdb
// reports as ENOSPC (kv.ErrNoSpace). Opening fails if the blocks cannot
// be allocated (the disk is already too full to run safely).
func backRegions(dir string) error {
	files, err := regionFiles(dir)
	if err != nil {
		return err
	}
	mapped := mappedLengths()
	for _, f := range files {
		fh, err := os.OpenFile(f, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("bdb: back region file %s: %w", f, err)
		}
		size := mapped[regionKey(f)]
		fi, err := fh.Stat()
		if err == nil && fi.Size() > size {
			size = fi.Size()
		}
		if err == nil && size > 0 {
			// FALLOC_FL_KEEP_SIZE: blocks even beyond the end, size unchanged.
			err = unix.Fallocate(int(fh.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
			if err == syscall.EOPNOTSUPP {
				err = nil // file system without fallocate: nothing we can do
			}
		}
		fh.Close()
		if err != nil {
			return fmt.Errorf("bdb: back region file %s: %w", f, wrapErrno(err))
		}
	}
	return nil
}

// regionRoom is the disk space the region files of an environment with a
// cache of cache bytes may take when fully grown (backRegions backs that
// much): libdb maps the cache region at about 1.1 times the cache, and
// the primary region (lock tables of SetLkMax, mutexes) and the log
// region at about 60 MiB.
func regionRoom(cache int64) int64 { return cache + cache/8 + 60<<20 }

// checkRegionRoom refuses, with kv.ErrNoSpace, to open the environment in
// dir when its file system has less room than its region files may take
// (regionRoom; the blocks of the region files there now count as room:
// a writable open recreates them). libdb grows them sparse while the
// open's recovery runs, before backRegions can back them, so on a disk
// that full the open itself would die of SIGBUS.
func checkRegionRoom(dir string, cache int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // the open names the directory's problem
	}
	free := int64(st.Bavail) * st.Bsize
	files, _ := regionFiles(dir)
	for _, f := range files {
		var fst syscall.Stat_t
		if syscall.Stat(f, &fst) == nil {
			free += fst.Blocks * 512
		}
	}
	if need := regionRoom(cache); free < need {
		return fmt.Errorf("bdb: open %s: %d MiB free on its file system, and the environment's region files (cache %d MiB) may take %d MiB: free some space or lower the cache size: %w",
			dir, free>>20, cache>>20, need>>20, kv.ErrNoSpace)
	}
	return nil
}

// regionKey is the path /proc/self/maps names the file f by: absolute,
// symbolic links resolved.
func regionKey(f string) string {
	if p, err := filepath.EvalSymlinks(f); err == nil {
		f = p
	}
	if p, err := filepath.Abs(f); err == nil {
		f = p
	}
	return f
}

// mappedLengths reads /proc/self/maps and returns, for each region file
// (__db.NNN) mapped in this process, the length of its longest mapping.
// Nil where the file cannot be read.
func mappedLengths() map[string]int64 {
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.HasPrefix(filepath.Base(fields[5]), "__db.") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		path := strings.Join(fields[5:], " ")
		if n := int64(end - start); n > m[path] {
			m[path] = n
		}
	}
	return m
}

// wrapErrno makes ENOSPC match kv.ErrNoSpace.
func wrapErrno(err error) error {
	if err == syscall.ENOSPC {
		return fmt.Errorf("%w (%w)", err, kv.ErrNoSpace)
	}
	return err
}
