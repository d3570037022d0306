//go:build bdb

package bdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/recovery"
)

// metaChecksummed reads the DBMETA_CHKSUM bit of file's meta page (byte 26,
// metaflags), as libdb's __db_pgin does, without libdb.
func metaChecksummed(t *testing.T, file string) bool {
	t.Helper()
	b := make([]byte, 32)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b[26]&0x01 != 0
}

// A store's files are created with page checksums, so that a page damaged
// on disk is refused (kv.ErrCorrupt, naming the file and the page) instead
// of being read as data, as LevelDB's block checksums do (TestCorruptTable
// in leveldb).
func TestCorruptPage(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	val := bytes.Repeat([]byte("durus object record "), 15)
	for start := 0; start < 3000; start += 1000 {
		err := kv.Update(t.Context(), s, kv.NoSync, func(tx kv.Txn) error {
			for i := start; i < start+1000; i++ {
				if err := tx.Put(kvtest.Objects, fmt.Appendf(nil, "%08d", i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, b := range kvtest.Buckets() {
		if !metaChecksummed(t, filepath.Join(dir, b.File)) {
			t.Fatalf("%s was created without page checksums", b.File)
		}
	}
	file := filepath.Join(dir, "objects.db")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(data[len(data)/2:], []byte("object record")) + len(data)/2
	if off < len(data)/2 {
		t.Fatalf("no record bytes in the second half of %s", file)
	}
	data[off] ^= 0x5a // one byte of a value: without checksums it would read as data
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = bdb.OpenStore(kvtest.Options(dir))
	if err == nil {
		err = kv.View(t.Context(), s, func(tx kv.Txn) error {
			c, err := tx.Cursor(kvtest.Objects)
			if err != nil {
				return err
			}
			defer c.Close()
			for ok := c.First(); ok; ok = c.Next() {
				if !bytes.Equal(c.Value(), val) {
					return fmt.Errorf("key %s read as %q", c.Key(), c.Value())
				}
			}
			return c.Err()
		})
		s.Close()
	}
	// The damaged page is met by the open's recovery (which names the
	// directory: libdb's message does not say which file) or by a read
	// (which names the file).
	if !errors.Is(err, kv.ErrCorrupt) || !errors.Is(err, bdb.ErrChecksum) ||
		!strings.Contains(err.Error(), "objects.db") && !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "checksum error: page") {
		t.Fatalf("reading a store with a damaged page: %v; want kv.ErrCorrupt naming the file or directory, and the page", err)
	}
	t.Log(err)
	_, verr := recovery.VerifyBackend(dir)
	if !errors.Is(verr, kv.ErrCorrupt) || !strings.Contains(verr.Error(), "objects.db") ||
		!strings.Contains(verr.Error(), "checksum error: page") {
		t.Fatalf("Verify of a damaged page: %v", verr)
	}
	// The other files are verified in environments of their own: the
	// damage in objects.db (which panicked its environment) is the only
	// problem reported.
	for _, other := range []string{"meta.db", "refcounts.db", "garbage.db", "hashed.db"} {
		if strings.Contains(verr.Error(), other) {
			t.Fatalf("Verify blames undamaged %s: %v", other, verr)
		}
	}
}

// A file keeps what it was created with: one without page checksums (every
// directory of earlier releases and of the Python original) opens and reads
// as before, and asking for checksums does not change it.
func TestChecksumsAsCreated(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir)
	plain := openDB(t, e, "plain.db", bdb.DBOptions{Access: bdb.Btree})
	summed := openDB(t, e, "summed.db", bdb.DBOptions{Access: bdb.Btree, Checksum: true})
	for _, d := range []*bdb.DB{plain, summed} {
		if err := d.Put(nil, []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if plain.Checksums() || !summed.Checksums() {
		t.Fatalf("checksums: plain %v, summed %v", plain.Checksums(), summed.Checksums())
	}
	plain.Close()
	summed.Close()
	for file, want := range map[string]bool{"plain.db": false, "summed.db": true} {
		for _, o := range []bdb.DBOptions{{Access: bdb.Existing}, {Access: bdb.Btree, Create: true, Checksum: true}} {
			d, err := e.OpenDB(file, o)
			if err != nil {
				t.Fatal(err)
			}
			if d.Checksums() != want {
				t.Fatalf("%s reopened with %+v: checksums %v, want %v", file, o, d.Checksums(), want)
			}
			if v, err := d.Get(nil, []byte("k")); err != nil || string(v) != "v" {
				t.Fatalf("%s: get %q, %v", file, v, err)
			}
			d.Close()
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if metaChecksummed(t, filepath.Join(dir, "plain.db")) || !metaChecksummed(t, filepath.Join(dir, "summed.db")) {
		t.Fatal("the meta pages do not say what the files were created with")
	}
}
