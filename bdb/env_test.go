//go:build bdb

package bdb_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

func openEnv(t testing.TB, dir string) *bdb.Env {
	t.Helper()
	e, err := bdb.OpenEnv(dir, bdb.EnvOptions{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close env: %v", err)
		}
	})
	return e
}

func openDB(t testing.TB, e *bdb.Env, file string, o bdb.DBOptions) *bdb.DB {
	t.Helper()
	o.Create = true
	d, err := e.OpenDB(file, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEnvDBBasics(t *testing.T) {
	dir := t.TempDir()
	e := openEnv(t, dir)
	for _, acc := range []bdb.Access{bdb.Btree, bdb.Hash} {
		d := openDB(t, e, fmt.Sprintf("basics%d.db", acc), bdb.DBOptions{Access: acc, PageSize: 8192})
		if d.Access() != acc {
			t.Fatalf("access %v, want %v", d.Access(), acc)
		}
		if ps, err := d.PageSize(); err != nil || ps != 8192 {
			t.Fatalf("page size %d, %v", ps, err)
		}
		// Outside a transaction (auto-commit).
		if err := d.Put(nil, []byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if v, err := d.Get(nil, []byte("k")); err != nil || string(v) != "v" {
			t.Fatalf("get: %q %v", v, err)
		}
		_, err := d.Get(nil, []byte("missing"))
		if !errors.Is(err, bdb.ErrNotFound) || !errors.Is(err, kv.ErrNotFound) || !errors.Is(err, libdb.ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		if err := d.Delete(nil, []byte("missing")); !errors.Is(err, bdb.ErrNotFound) {
			t.Fatalf("delete missing: %v", err)
		}
		// Inside a transaction, with a cursor.
		tx, err := e.Begin(bdb.TxnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tx.ID() == 0 {
			t.Fatal("txn id 0")
		}
		for i := 0; i < 100; i++ {
			if err := d.Put(tx, []byte(fmt.Sprintf("r%03d", i)), bytes.Repeat([]byte{byte(i)}, i*50)); err != nil {
				t.Fatal(err)
			}
		}
		c, err := d.Cursor(tx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for k, v, err := c.First(); err == nil; k, v, err = c.Next() {
			if string(k) != "k" && len(v) != 50*int(k[3]-'0'+10*(k[2]-'0')+100*(k[1]-'0')) {
				t.Fatalf("record %q has %d bytes", k, len(v))
			}
			n++
		}
		if n != 101 {
			t.Fatalf("cursor saw %d records", n)
		}
		if err := tx.Commit(kv.Sync); err != nil { // closes c
			t.Fatal(err)
		}
		if _, _, err := c.Next(); !errors.Is(err, bdb.ErrTxnDone) {
			t.Fatalf("cursor after commit: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(kv.Sync); !errors.Is(err, kv.ErrTxnDone) {
			t.Fatalf("second commit: %v", err)
		}
		st, err := d.Stat(nil, false)
		if err != nil || st.Keys != 101 || st.PageSize != 8192 {
			t.Fatalf("stat %+v %v", st, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatalf("second DB close: %v", err)
		}
		if _, err := d.Get(nil, []byte("k")); !errors.Is(err, bdb.ErrClosed) {
			t.Fatalf("get after DB close: %v", err)
		}
	}
	if err := e.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	logs, err := e.LogFiles(true)
	if err != nil || len(logs) == 0 || logs[0] != "log.0000000001" {
		t.Fatalf("log files %q %v", logs, err)
	}
	if err := e.RemoveLogs(); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	st, err := e.Stats()
	if err != nil || st.Txn.NCommits == 0 || st.Mpool.CacheBytes < 8<<20 || st.Log.FileSize == 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second env close: %v", err)
	}
	if _, err := e.Begin(bdb.TxnOptions{}); !errors.Is(err, kv.ErrClosed) || !errors.Is(err, bdb.ErrClosed) {
		t.Fatalf("begin after close: %v", err)
	}
	if err := e.Flush(); !errors.Is(err, bdb.ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}
	// Verify the files with a new environment.
	e2 := openEnv(t, dir)
	for _, f := range []string{"basics0.db", "basics1.db"} {
		if err := e2.Verify(f); err != nil {
			t.Fatalf("verify %s: %v", f, err)
		}
	}
}

// TestCursorBufferSmall walks records of growing sizes in both directions
// with small starting buffers: every DB_BUFFER_SMALL retry must repeat the
// move, not skip a record.
func TestCursorBufferSmall(t *testing.T) {
	e := openEnv(t, t.TempDir())
	d := openDB(t, e, "sizes.db", bdb.DBOptions{})
	const n = 60
	want := make([][]byte, n)
	for i := range want {
		want[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 1+i*i*7)
		k := bytes.Repeat([]byte{byte(i)}, 1+i*9) // keys up to 532 bytes: key buffer grows too
		if err := d.Put(nil, k, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := e.Begin(bdb.TxnOptions{Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	for _, fwd := range []bool{true, false} {
		c, err := d.Cursor(tx)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		var k, v []byte
		if fwd {
			k, v, err = c.First()
		} else {
			k, v, err = c.Last()
		}
		for err == nil {
			if len(k) != 1+int(k[0])*9 {
				t.Fatalf("key of %d bytes for record %d", len(k), k[0])
			}
			got = append(got, v)
			if fwd {
				k, v, err = c.Next()
			} else {
				k, v, err = c.Prev()
			}
		}
		if !errors.Is(err, bdb.ErrNotFound) {
			t.Fatal(err)
		}
		if !fwd {
			slices.Reverse(got)
		}
		if len(got) != n {
			t.Fatalf("fwd=%v: %d records, want %d", fwd, len(got), n)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("fwd=%v: record %d has %d bytes, want %d", fwd, i, len(got[i]), len(want[i]))
			}
		}
		// Seek with a key longer than the cursor's key buffer.
		k, v, err = c.Seek(bytes.Repeat([]byte{40}, 300))
		if err != nil || k[0] != 40 || !bytes.Equal(v, want[40]) {
			t.Fatalf("seek: %d %v", len(k), err)
		}
		c.Close()
	}
}

// TestDeadlockIsConflict makes two transactions wait for each other across
// two files; the detector must abort one with ErrDeadlock (kv.ErrConflict).
func TestDeadlockIsConflict(t *testing.T) {
	e := openEnv(t, t.TempDir())
	d1 := openDB(t, e, "one.db", bdb.DBOptions{})
	d2 := openDB(t, e, "two.db", bdb.DBOptions{})
	t1, _ := e.Begin(bdb.TxnOptions{})
	t2, _ := e.Begin(bdb.TxnOptions{})
	if err := d1.Put(t1, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := d2.Put(t2, []byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	type res struct {
		who int
		err error
	}
	resc := make(chan res, 2)
	go func() { resc <- res{1, d2.Put(t1, []byte("b"), []byte("1"))} }()
	go func() { resc <- res{2, d1.Put(t2, []byte("a"), []byte("2"))} }()
	var victim error
	for i := 0; i < 2; i++ {
		select {
		case r := <-resc:
			if r.err == nil {
				continue
			}
			if victim != nil {
				t.Fatalf("two victims: %v, %v", victim, r.err)
			}
			victim = r.err
			if r.who == 1 { // release the victim's locks so the other goes on
				t1.Abort()
			} else {
				t2.Abort()
			}
		case <-time.After(10 * time.Second):
			t.Fatal("deadlock not detected in 10 s")
		}
	}
	t1.Abort()
	t2.Abort()
	if !errors.Is(victim, bdb.ErrDeadlock) || !errors.Is(victim, kv.ErrConflict) || !errors.Is(victim, libdb.ErrLockDeadlock) {
		t.Fatalf("victim error %v", victim)
	}

	// A no-wait transaction gets ErrLockNotGranted at once.
	t3, _ := e.Begin(bdb.TxnOptions{})
	defer t3.Abort()
	if err := d1.Put(t3, []byte("a"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	t4, _ := e.Begin(bdb.TxnOptions{NoWait: true})
	defer t4.Abort()
	err := d1.Put(t4, []byte("a"), []byte("4"))
	// libdb reports DB_LOCK_DEADLOCK for DB_TXN_NOWAIT unless the
	// environment sets DB_TIME_NOTGRANTED.
	if !errors.Is(err, bdb.ErrDeadlock) || !errors.Is(err, kv.ErrConflict) {
		t.Fatalf("no-wait: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, c := range []struct {
		code int
		is   []error
	}{
		{int(syscall.ENOSPC), []error{kv.ErrNoSpace, syscall.ENOSPC}},
		{int(syscall.EDQUOT), []error{kv.ErrNoSpace, syscall.EDQUOT}},
		{int(syscall.ENOMEM), []error{kv.ErrCacheFull, syscall.ENOMEM}}, // a region full: "unable to allocate space from the buffer cache"
		{int(libdb.ErrRunRecovery), []error{bdb.ErrRunRecovery, kv.ErrNeedRecover}},
		{int(libdb.ErrVerifyBad), []error{kv.ErrCorrupt}},
		{int(libdb.ErrLockDeadlock), []error{bdb.ErrDeadlock, kv.ErrConflict}},
		{int(libdb.ErrLockNotGranted), []error{bdb.ErrLockNotGranted, kv.ErrConflict}},
		{int(libdb.ErrNotFound), []error{bdb.ErrNotFound, kv.ErrNotFound, libdb.ErrNotFound}},
	} {
		err := bdb.WrapForTest("op", &libdb.Error{Op: "DB->put", Code: c.code})
		for _, target := range c.is {
			if !errors.Is(err, target) {
				t.Errorf("code %d: %v is not %v", c.code, err, target)
			}
		}
		if bdb.Code(err) != c.code {
			t.Errorf("Code = %d, want %d", bdb.Code(err), c.code)
		}
	}
	if errors.Is(bdb.ErrKeyExists, kv.ErrNotFound) {
		t.Error("ErrKeyExists matches kv.ErrNotFound")
	}
}

// TestCloseReleasesWaiter: Close aborts a transaction holding a lock that
// another goroutine is waiting for, then aborts the waiter.
func TestCloseReleasesWaiter(t *testing.T) {
	e, err := bdb.OpenEnv(t.TempDir(), bdb.EnvOptions{CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.OpenDB("w.db", bdb.DBOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := e.Begin(bdb.TxnOptions{})
	t2, _ := e.Begin(bdb.TxnOptions{})
	if err := d.Put(t1, []byte("k"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		werr = d.Put(t2, []byte("k"), []byte("2")) // waits for t1
	}()
	// Gives the Put time to block on t1's lock: no statistic shows a
	// lock wait to poll for. If it has not blocked yet, Close still has
	// to end it; the test then checks less, it cannot fail wrongly.
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked by a lock waiter")
	}
	wg.Wait()
	_ = werr // the waiter either got the lock (then was aborted) or failed
	if err := t1.Commit(kv.Sync); !errors.Is(err, kv.ErrClosed) && !errors.Is(err, kv.ErrTxnDone) {
		t.Fatalf("commit after close: %v", err)
	}
	if err := t2.Abort(); err != nil {
		t.Fatalf("abort after close: %v", err)
	}
}

// TestBulkReadAhead: in a snapshot transaction Next reads ahead in
// batches; every mix of Next and Prev must still visit the right records,
// including one larger than the batch buffer.
func TestBulkReadAhead(t *testing.T) {
	e := openEnv(t, t.TempDir())
	d := openDB(t, e, "bulk.db", bdb.DBOptions{PageSize: 4096})
	const n = 3000
	val := func(i int) []byte {
		if i == 1234 {
			return bytes.Repeat([]byte{7}, 300<<10) // > the 128 KiB batch buffer
		}
		return []byte(fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte{'v'}, i%200)))
	}
	tx, _ := e.Begin(bdb.TxnOptions{})
	for i := 0; i < n; i++ {
		if err := d.Put(tx, oidKey(uint64(i)), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(kv.NoSync); err != nil {
		t.Fatal(err)
	}
	rt, _ := e.Begin(bdb.TxnOptions{Snapshot: true})
	defer rt.Abort()
	c, err := d.Cursor(rt)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	i := 0
	check := func(k, v []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("at %d: %v", i, err)
		}
		if !bytes.Equal(k, oidKey(uint64(i))) || !bytes.Equal(v, val(i)) {
			t.Fatalf("at %d: got key %x (%d-byte value)", i, k, len(v))
		}
	}
	k, v, err := c.First()
	check(k, v, err)
	for step := 0; i < n-1; step++ {
		if step%97 == 96 && i > 0 { // now and then step back and forth
			i--
			k, v, err = c.Prev()
			check(k, v, err)
		}
		i++
		k, v, err = c.Next()
		check(k, v, err)
	}
	if _, _, err := c.Next(); !errors.Is(err, bdb.ErrNotFound) {
		t.Fatalf("past the end: %v", err)
	}
	i = n - 1
	k, v, err = c.Last()
	check(k, v, err)
}
