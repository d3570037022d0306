package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/durusbdb/durusbdb/durus/filestorage"
)

// genRecord appends record oid of a data set of count records to b. It must
// stay identical to genrec in bench/commitc/commitc.c: data length
// 200 + (oid*2654435761 mod 1601) when big (about 1 KB on average), else
// 100; data byte j = oid*7 + j*31; refs = the children 2*oid+1 and 2*oid+2
// that are below count, so every record is reachable from the root (oid 0)
// and no collector removes anything.
func genRecord(b []byte, oid, count uint64, big bool) []byte {
	n := uint32(100)
	if big {
		n = 200 + uint32((oid*2654435761)%1601)
	}
	b = binary.BigEndian.AppendUint64(b, oid)
	b = binary.BigEndian.AppendUint32(b, n)
	for j := range uint64(n) {
		b = append(b, byte(oid*7+j*31))
	}
	for c := 2*oid + 1; c <= 2*oid+2; c++ {
		if c < count {
			b = binary.BigEndian.AppendUint64(b, c)
		}
	}
	return b
}

// writeShelf writes a Shelf file of count generated records at path (if it
// is not there yet) and returns its size.
func writeShelf(path string, count uint64, big bool) (int64, error) {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size(), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	st, err := filestorage.WriteShelf(path, filestorage.WriteOptions{}, func(yield func(oid uint64, rec []byte) error) error {
		var b []byte
		for oid := range count {
			b = genRecord(b[:0], oid, count, big)
			if err := yield(oid, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("write shelf %s: %w", path, err)
	}
	return st.Size, nil
}

// dataset is a cached database of count small records in three forms: a
// Shelf file for Durus, and durusbdb directories for each backend.
type dataset struct {
	count uint64
	shelf string
	dirs  map[string]string // backend -> directory
}

// buildDataset makes (once; later runs find it in the cache) the data set
// of count records: the Shelf with writeShelf, the durusbdb directories
// with `durusbdb migrate` from it.
func (s *suite) buildDataset(count uint64) (*dataset, error) {
	base := filepath.Join(s.cache, fmt.Sprintf("objs-%d", count))
	ds := &dataset{count: count, shelf: filepath.Join(base, "objects.durus"), dirs: map[string]string{}}
	t0 := time.Now()
	if _, err := writeShelf(ds.shelf, count, false); err != nil {
		return nil, err
	}
	if d := time.Since(t0); d > time.Second {
		s.logf("  wrote %s in %.1f s", ds.shelf, d.Seconds())
	}
	for _, b := range s.backends {
		dir := filepath.Join(base, b)
		ds.dirs[b] = dir
		if _, err := os.Stat(dir + ".complete"); err == nil {
			continue
		}
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		_, el, err := s.ps.runCmd(2*time.Hour, s.logPath("build"), s.durusbdb, "migrate", "--dir", dir, "--create",
			"--backend", b, ds.shelf)
		if err != nil {
			return nil, fmt.Errorf("build %s data set of %d objects: %w", b, count, err)
		}
		s.logf("  migrated %d objects into %s in %.1f s", count, dir, el.Seconds())
		if err := os.WriteFile(dir+".complete", nil, 0o644); err != nil {
			return nil, err
		}
	}
	return ds, nil
}
