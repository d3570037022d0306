//go:build bdb

package libdb_test

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/durusbdb/durusbdb/cgo/libdb"
)

func TestErrors(t *testing.T) {
	err := error(&libdb.Error{Op: "DB->put", Code: int(syscall.ENOSPC)})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%v does not unwrap to ENOSPC", err)
	}
	if !strings.HasPrefix(err.Error(), "DB->put: ") || !strings.Contains(err.Error(), "space") {
		t.Fatalf("message %q", err)
	}
	err = &libdb.Error{Op: "DB->get", Code: int(libdb.ErrNotFound)}
	if !errors.Is(err, libdb.ErrNotFound) || errors.Is(err, libdb.ErrKeyExist) {
		t.Fatalf("%v: wrong Errno", err)
	}
	if !strings.Contains(err.Error(), "DB_NOTFOUND") {
		t.Fatalf("message %q lacks db_strerror text", err)
	}
	if libdb.Code(err) != int(libdb.ErrNotFound) || libdb.Code(errors.New("x")) != 0 {
		t.Fatal("Code")
	}
	if !strings.Contains(libdb.Version(), "5.3") {
		t.Fatalf("version %q", libdb.Version())
	}
}

// TestRawHandles drives the binding directly: environment, btree, cursor,
// bulk read, and calls on dead handles.
func TestRawHandles(t *testing.T) {
	dir := t.TempDir()
	env, err := libdb.EnvCreate()
	if err != nil {
		t.Fatal(err)
	}
	if err := env.SetCacheSize(4<<20, 1); err != nil {
		t.Fatal(err)
	}
	flags := libdb.Create | libdb.InitTxn | libdb.InitLog | libdb.InitLock | libdb.InitMpool |
		libdb.Thread | libdb.Recover | libdb.Register
	if err := env.Open(dir, flags, 0); err != nil {
		t.Fatal(err)
	}
	db, err := libdb.DBCreate(env)
	if err != nil {
		t.Fatal(err)
	}
	txn, err := env.TxnBegin(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Open(txn, "raw.db", libdb.Btree, libdb.Create|libdb.Thread, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		k := []byte{byte(i >> 8), byte(i)}
		if err := db.Put(txn, k, bytes.Repeat(k, 10), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Put(txn, nil, nil, 0); err != nil { // empty key and value
		t.Fatal(err)
	}
	if v, err := db.Get(txn, nil, nil, 0); err != nil || len(v) != 0 {
		t.Fatalf("empty key: %q %v", v, err)
	}
	// A zero-capacity buffer grows on DB_BUFFER_SMALL.
	if v, err := db.Get(txn, []byte{0, 5}, nil, 0); err != nil || len(v) != 20 {
		t.Fatalf("get: %q %v", v, err)
	}
	c, err := db.Cursor(txn, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n := 0
	for {
		_, err := c.GetMultipleKey(buf, libdb.Next)
		if errors.Is(err, libdb.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		it := libdb.NewMultipleKey(buf)
		for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
			if !bytes.Equal(v, bytes.Repeat(k, 10)) {
				t.Fatalf("bulk pair %x -> %x", k, v)
			}
			n++
		}
	}
	if n != 1001 {
		t.Fatalf("bulk read %d pairs, want 1001", n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("second cursor close: %v", err)
	}
	if err := txn.Commit(libdb.TxnSync); err != nil {
		t.Fatal(err)
	}
	if err := txn.Abort(); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("abort of a committed txn: %v", err)
	}
	// memp_trickle writes the dirty pages (the checkpoint's spread writes).
	if st, err := env.MpoolStat(); err != nil || st.PagesDirty == 0 {
		t.Fatalf("dirty pages before trickle: %+v %v", st, err)
	}
	if n, err := env.MempTrickle(100); err != nil || n == 0 {
		t.Fatalf("memp_trickle wrote %d pages: %v", n, err)
	}
	if st, err := env.MpoolStat(); err != nil || st.PagesDirty != 0 {
		t.Fatalf("dirty pages after trickle(100): %+v %v", st, err)
	}
	if err := env.TxnCheckpoint(0, 0, libdb.Force); err != nil {
		t.Fatal(err)
	}
	logs, err := env.LogArchive(libdb.ArchLog | libdb.ArchAbs)
	if err != nil || len(logs) != 1 || !strings.HasPrefix(logs[0], dir) {
		t.Fatalf("log_archive: %q %v", logs, err)
	}
	if err := db.Close(0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(nil, nil, nil, 0); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("get on closed DB: %v", err)
	}
	if err := env.Verify("raw.db", 0); err != nil {
		t.Fatal(err)
	}
	if err := env.Close(0); err != nil {
		t.Fatal(err)
	}
}
