//go:build bdb

package bdb_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/internal/testpy"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
)

func oidKey(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

func record(i uint64) []byte {
	return []byte(fmt.Sprintf("record-%d-%s", i, strings.Repeat("x", int(i%300))))
}

// writeRecords stores n objects (oid -> record) and a few meta keys.
func writeRecords(t *testing.T, dir string, n int) {
	t.Helper()
	s := mustOpen(t, kvtest.Options(dir))
	err := kv.Update(context.Background(), s, kv.Sync, func(tx kv.Txn) error {
		for i := 0; i < n; i++ {
			if err := tx.Put("objects", oidKey(uint64(i)), record(uint64(i))); err != nil {
				return err
			}
		}
		if err := tx.Put("meta", []byte("layout"), []byte("durusbdb/1")); err != nil {
			return err
		}
		return tx.Put("hashed", []byte("hkey"), []byte("hval"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed (Debian package db5.3-util): %v", name, err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestLibdbTools checks the files bdb writes with Debian's db5.3 tools.
func TestLibdbTools(t *testing.T) {
	dir := t.TempDir()
	const n = 500
	writeRecords(t, dir, n)
	for _, f := range []string{"meta.db", "objects.db", "refcounts.db", "garbage.db", "hashed.db"} {
		out := tool(t, "db5.3_verify", "-h", dir, f)
		if strings.Contains(out, "DB_VERIFY_BAD") {
			t.Fatalf("verify %s: %s", f, out)
		}
	}
	dump := tool(t, "db5.3_dump", "-p", "-h", dir, "objects.db")
	if !strings.Contains(dump, "type=btree") || !strings.Contains(dump, "HEADER=END") {
		t.Fatalf("dump header: %.300s", dump)
	}
	// -p prints non-printable bytes as \xx: oid 7 is \00\00\00\00\00\00\00\07.
	if !strings.Contains(dump, ` \00\00\00\00\00\00\00\07`) || !strings.Contains(dump, " record-7-xxxxxxx") {
		t.Fatalf("dump lacks record 7")
	}
	if got := strings.Count(dump, " record-"); got != n {
		t.Fatalf("dump shows %d records, want %d", got, n)
	}
	hdump := tool(t, "db5.3_dump", "-p", "-h", dir, "hashed.db")
	if !strings.Contains(hdump, "type=hash") || !strings.Contains(hdump, " hkey\n hval") {
		t.Fatalf("hash dump: %s", hdump)
	}
	stat := tool(t, "db5.3_stat", "-d", "objects.db", "-h", dir)
	if !strings.Contains(stat, "Btree magic number") {
		t.Fatalf("stat: %s", stat)
	}
	var keys, psize int
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.Atoi(f[0])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "Number of unique keys"):
			keys = v
		case strings.Contains(line, "Underlying database page size"):
			psize = v
		}
	}
	if keys != n || psize != 16384 {
		t.Fatalf("db_stat: %d keys (want %d), page size %d (want 16384)\n%s", keys, n, psize, stat)
	}
}

const pyEnv = `
import sys, binascii
from bsddb3 import db
home = sys.argv[2]
env = db.DBEnv()
env.set_cachesize(0, 8 << 20, 1)
env.set_lk_detect(db.DB_LOCK_DEFAULT)
env.open(home, db.DB_CREATE | db.DB_INIT_TXN | db.DB_INIT_LOG | db.DB_INIT_LOCK |
         db.DB_INIT_MPOOL | db.DB_THREAD | db.DB_RECOVER | db.DB_REGISTER, 0o660)
def opendb(name, kind, pagesize=0):
    d = db.DB(env)
    if pagesize:
        d.set_pagesize(pagesize)
    flags = db.DB_AUTO_COMMIT | db.DB_THREAD
    if kind != db.DB_UNKNOWN:
        flags |= db.DB_CREATE
    d.open(name, None, kind, flags, 0o660)
    return d
if sys.argv[1] == "write":
    n = int(sys.argv[3])
    dbs = {"meta": opendb("meta.db", db.DB_BTREE), "objects": opendb("objects.db", db.DB_BTREE, 16384),
           "refcounts": opendb("refcounts.db", db.DB_BTREE), "garbage": opendb("garbage.db", db.DB_BTREE),
           "hashed": opendb("hashed.db", db.DB_HASH)}
    txn = env.txn_begin()
    for i in range(n):
        k = i.to_bytes(8, "big")
        dbs["objects"].put(k, b"py-%d-" % i + bytes(range(i % 256)), txn=txn)
        dbs["refcounts"].put(k, (i % 7).to_bytes(4, "big"), txn=txn)
        dbs["hashed"].put(b"h%d" % i, b"v%d" % i, txn=txn)
    dbs["meta"].put(b"layout", b"durusbdb/1", txn=txn)
    txn.commit()
    for d in dbs.values():
        d.close()
else:
    for name in sys.argv[3:]:
        d = opendb(name, db.DB_UNKNOWN)
        txn = env.txn_begin()
        c = d.cursor(txn)
        r = c.first()
        while r is not None:
            print(name, binascii.hexlify(r[0]).decode(), binascii.hexlify(r[1]).decode())
            r = c.next()
        c.close()
        txn.commit()
        d.close()
env.close()
`

func python(t *testing.T, args ...string) string {
	t.Helper()
	py := testpy.Python(t, "bsddb3")
	script := filepath.Join(t.TempDir(), "bsddb_interop.py")
	if err := os.WriteFile(script, []byte(pyEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, append([]string{script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestPythonWritesGoReads: bsddb3 creates the environment and the files;
// the Store reads every record back.
func TestPythonWritesGoReads(t *testing.T) {
	dir := t.TempDir()
	const n = 300
	python(t, "write", dir, strconv.Itoa(n))
	o := kvtest.Options(dir)
	o.Create = false
	s := mustOpen(t, o)
	tx, err := s.Begin(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	c, err := tx.Cursor("objects")
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for ok := c.First(); ok; ok = c.Next() {
		want := append([]byte(fmt.Sprintf("py-%d-", i)), make([]byte, i%256)...)
		for j := 0; j < i%256; j++ {
			want[len(want)-i%256+j] = byte(j)
		}
		if !bytes.Equal(c.Key(), oidKey(uint64(i))) || !bytes.Equal(c.Value(), want) {
			t.Fatalf("record %d: %x = %q", i, c.Key(), c.Value())
		}
		i++
	}
	c.Close()
	if i != n {
		t.Fatalf("read %d objects, want %d", i, n)
	}
	for i := 0; i < n; i++ {
		v, err := tx.Get("refcounts", oidKey(uint64(i)))
		if err != nil || binary.BigEndian.Uint32(v) != uint32(i%7) {
			t.Fatalf("refcount %d: %x %v", i, v, err)
		}
		v, err = tx.Get("hashed", []byte(fmt.Sprintf("h%d", i)))
		if err != nil || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("hashed %d: %q %v", i, v, err)
		}
	}
	if v, err := tx.Get("meta", []byte("layout")); err != nil || string(v) != "durusbdb/1" {
		t.Fatalf("meta layout: %q %v", v, err)
	}
	if st, err := s.DB("objects").Stat(nil, true); err != nil || st.PageSize != 16384 {
		t.Fatalf("objects page size from python: %+v %v", st, err)
	}
}

// TestGoWritesPythonReads: the Store writes; bsddb3 joins the same
// directory with the same flags and reads every record.
func TestGoWritesPythonReads(t *testing.T) {
	dir := t.TempDir()
	const n = 300
	writeRecords(t, dir, n)
	out := python(t, "read", dir, "objects.db", "hashed.db", "meta.db")
	got := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 && !(len(f) == 2) {
			t.Fatalf("python output line %q", line)
		}
		val := ""
		if len(f) == 3 {
			val = f[2]
		}
		if got[f[0]] == nil {
			got[f[0]] = map[string]string{}
		}
		got[f[0]][f[1]] = val
	}
	if len(got["objects.db"]) != n {
		t.Fatalf("python read %d objects, want %d", len(got["objects.db"]), n)
	}
	for i := 0; i < n; i++ {
		if v := got["objects.db"][hex.EncodeToString(oidKey(uint64(i)))]; v != hex.EncodeToString(record(uint64(i))) {
			t.Fatalf("python read object %d as %q", i, v)
		}
	}
	if got["hashed.db"][hex.EncodeToString([]byte("hkey"))] != hex.EncodeToString([]byte("hval")) {
		t.Fatalf("python hashed.db: %v", got["hashed.db"])
	}
	if got["meta.db"][hex.EncodeToString([]byte("layout"))] != hex.EncodeToString([]byte("durusbdb/1")) {
		t.Fatalf("python meta.db: %v", got["meta.db"])
	}
	// And the Store opens the directory again after Python used it.
	s := mustOpen(t, kvtest.Options(dir))
	tx, _ := s.Begin(context.Background(), false)
	defer tx.Abort()
	if v, err := tx.Get("objects", oidKey(5)); err != nil || !bytes.Equal(v, record(5)) {
		t.Fatalf("reopen after python: %q %v", v, err)
	}
}
