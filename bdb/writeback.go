//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A checkpoint's writes, spread.
//
// DB_ENV->txn_checkpoint writes every dirty page of the cache to its file
// (pwrite: into the operating system's page cache) and then fsyncs each
// database file, so that all of those pages go to the disk in one burst
// at the end. A durable commit's fdatasync of the log queues behind that
// burst: after a bulk write had filled the 64 MiB cache with dirty pages,
// commits at 8 connections stalled 40–100 ms at the end of the next
// checkpoint (the suite's "collector idle" maximum, 65–99 ms on bdb
// against 5 ms on LevelDB; docs/PERFORMANCE.md, thirteenth session).
//
// spreadWrites does the same work first in small steps: memp_trickle
// writes the dirty pages to their files, then sync_file_range pushes each
// file to the disk writeBackChunk bytes at a time, waiting for each chunk
// before starting the next, so a log flush waits for one chunk at most.
// The checkpoint that follows finds few dirty pages and little unwritten
// data, and its fsyncs are what make the checkpoint durable, as before:
// sync_file_range is only a scheduling hint here, never a guarantee.
// PostgreSQL's checkpointer does the same (checkpoint_flush_after).

// writeBackChunk is how many bytes of a file one sync_file_range call
// pushes to the disk.
const writeBackChunk = 512 << 10

// spreadWrites writes the cache's dirty pages to the database files and
// pushes the files' unwritten data to the disk in chunks. It returns the
// pages trickled and the chunks pushed; errors name the file.
func (e *Env) spreadWrites() (pages, chunks int, err error) {
	pages, err = e.env.MempTrickle(100)
	if err != nil {
		return 0, 0, wrap("trickle the cache of "+e.dir, err)
	}
	files, err := filepath.Glob(filepath.Join(e.dir, "*.db"))
	if err != nil {
		return pages, 0, err
	}
	for _, f := range files {
		n, err := writeBack(f, writeBackChunk)
		chunks += n
		if err != nil {
			return pages, chunks, err
		}
	}
	return pages, chunks, nil
}

// writeBack pushes the unwritten data of the file at path to the disk,
// chunk bytes at a time, each chunk waited for before the next starts. A
// file that is gone is skipped. It returns the number of chunks.
func writeBack(path string, chunk int64) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bdb: write back %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("bdb: write back %s: %w", path, err)
	}
	const flags = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	n := 0
	for off := int64(0); off < fi.Size(); off += chunk {
		if err := unix.SyncFileRange(int(f.Fd()), off, chunk, flags); err != nil {
			return n, fmt.Errorf("bdb: write back %s at offset %d: %w", path, off, err)
		}
		n++
	}
	return n, nil
}
