package leveldb_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/kv/kvtest"
	"github.com/durusbdb/durusbdb/leveldb"
)

// childEnv tells a re-executed test binary which helper role to play.
const childEnv = "DURUSBDB_LEVELDB_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(child(role))
	}
	os.Exit(m.Run())
}

// child runs in a re-executed test binary. Roles:
//
//	open:DIR   try to open DIR; exit 3 if the error wraps kv.ErrInUse (and
//	           print it), 0 if the open worked, 1 otherwise.
//	crash:DIR  commit keys with WriteNoSync and NoSync, print "committed",
//	           then SIGKILL itself without closing anything.
func child(role string) int {
	kind, dir, _ := strings.Cut(role, ":")
	switch kind {
	case "open":
		s, err := leveldb.OpenStore(kvtest.Options(dir))
		if err == nil {
			s.Close()
			return 0
		}
		fmt.Println(err)
		if errors.Is(err, kv.ErrInUse) {
			return 3
		}
		return 1
	case "crash":
		s, err := leveldb.OpenStore(kvtest.Options(dir))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		ctx := context.Background()
		for i, d := range []kv.Durability{kv.WriteNoSync, kv.NoSync} {
			err := kv.Update(ctx, s, d, func(tx kv.Txn) error {
				if err := tx.Put(kvtest.Objects, []byte(d.String()), []byte{byte(i)}); err != nil {
					return err
				}
				return tx.Put(kvtest.Refcounts, []byte(d.String()), []byte{byte(i)})
			})
			if err != nil {
				fmt.Println(err)
				return 1
			}
		}
		fmt.Println("committed")
		os.Stdout.Sync()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(10 * time.Second) // until the signal lands: never returns
		return 1
	case "holdlock":
		// Play a non-durusbdb LevelDB user: only LevelDB's fcntl lock on
		// LOCK, no directory flock.
		f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("locked")
		os.Stdout.Sync()
		io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
		return 0
	case "churn":
		s, err := leveldb.OpenStore(kvtest.Options(dir))
		if err != nil {
			fmt.Println(err)
			return 1
		}
		ctx := context.Background()
		big := bytes.Repeat([]byte("x"), 3000)
		for i := 0; i < 1_000_000; i++ {
			d := []kv.Durability{kv.NoSync, kv.WriteNoSync, kv.Sync}[i%3]
			err := kv.Update(ctx, s, d, func(tx kv.Txn) error {
				for k := 0; k < churnKeys; k++ {
					if err := tx.Put(kvtest.Objects, []byte(fmt.Sprintf("t%08d/k%d", i, k)), big); err != nil {
						return err
					}
				}
				return tx.Put(kvtest.Meta, []byte("last"), []byte(fmt.Sprint(i)))
			})
			if err != nil {
				fmt.Println(err)
				return 1
			}
			fmt.Println(i)
		}
		return 0
	}
	return 2
}

// churnKeys is the number of records per transaction of the churn child.
const churnKeys = 10

func runChild(t *testing.T, role string) (string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = -int(ws.Signal())
		}
	case err != nil:
		t.Fatalf("child %s: %v", role, err)
	}
	return string(out), code
}

func mustOpen(t *testing.T, opts kv.Options) *leveldb.Store {
	t.Helper()
	s, err := leveldb.OpenStore(opts)
	if err != nil {
		t.Fatalf("open %s: %v", opts.Dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(t *testing.T, s kv.Store, bucket string, k, v []byte) {
	t.Helper()
	err := kv.Update(t.Context(), s, kv.Sync, func(tx kv.Txn) error { return tx.Put(bucket, k, v) })
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s kv.Store, bucket string, k []byte) ([]byte, error) {
	t.Helper()
	var v []byte
	err := kv.View(t.Context(), s, func(tx kv.Txn) error {
		var err error
		v, err = tx.Get(bucket, k)
		return err
	})
	return v, err
}

func TestDetect(t *testing.T) {
	t.Run("BerkeleyDB", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "meta.db"), []byte("x"), 0o644)
		_, err := leveldb.OpenStore(kvtest.Options(dir))
		if !errors.Is(err, kv.ErrNotDB) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "Berkeley DB") {
			t.Fatalf("open of a Berkeley DB dir: %v", err)
		}
	})
	t.Run("EmptyNoCreate", func(t *testing.T) {
		dir := t.TempDir()
		opts := kvtest.Options(dir)
		opts.Create = false
		_, err := leveldb.OpenStore(opts)
		if !errors.Is(err, kv.ErrNotDB) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("open of an empty dir without Create: %v", err)
		}
		opts.Create, opts.ReadOnly = true, true
		if _, err := leveldb.OpenStore(opts); !errors.Is(err, kv.ErrNotDB) {
			t.Fatalf("read-only open of an empty dir: %v", err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("refused open wrote %d files", len(ents))
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Data.fs"), []byte("x"), 0o644)
		_, err := leveldb.OpenStore(kvtest.Options(dir))
		if !errors.Is(err, kv.ErrNotDB) || !strings.Contains(err.Error(), "Data.fs") || !strings.Contains(err.Error(), dir) {
			t.Fatalf("open of an unknown layout: %v", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		_, err := leveldb.OpenStore(kvtest.Options(filepath.Join(t.TempDir(), "nope")))
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("open of a missing dir: %v", err)
		}
	})
	t.Run("WrongMarker", func(t *testing.T) {
		dir := t.TempDir()
		s := mustOpen(t, kvtest.Options(dir))
		put(t, s, kvtest.Meta, []byte("backend"), []byte("bdb"))
		s.Close()
		_, err := leveldb.OpenStore(kvtest.Options(dir))
		if !errors.Is(err, kv.ErrNotDB) {
			t.Fatalf("open with backend marker bdb: %v", err)
		}
	})
}

func TestMarker(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	v, err := get(t, s, kvtest.Meta, []byte("backend"))
	if err != nil || string(v) != "leveldb" {
		t.Fatalf("meta backend = %q, %v", v, err)
	}
	if s.Backend() != "leveldb" {
		t.Fatalf("Backend() = %q", s.Backend())
	}
	for _, f := range []string{"CURRENT", "LOCK"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s missing: %v", f, err)
		}
	}
}

func TestInUse(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	// Same process, second Store.
	_, err := leveldb.OpenStore(kvtest.Options(dir))
	if !errors.Is(err, kv.ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second open in-process: %v", err)
	}
	ro := kvtest.Options(dir)
	ro.ReadOnly, ro.Create = true, false
	if _, err := leveldb.OpenStore(ro); !errors.Is(err, kv.ErrInUse) {
		t.Fatalf("read-only open while open: %v", err)
	}
	// Another process.
	out, code := runChild(t, "open:"+dir)
	if code != 3 || !strings.Contains(out, dir) {
		t.Fatalf("open from another process: exit %d, output %q; want exit 3 (ErrInUse) naming %s", code, out, dir)
	}
	s.Close()
	out, code = runChild(t, "open:"+dir)
	if code != 0 {
		t.Fatalf("open from another process after Close: exit %d, %q", code, out)
	}
	// And the first process can open it again.
	mustOpen(t, kvtest.Options(dir))
}

// TestProcessCrash checks the documented claim: WriteNoSync and NoSync
// commits survive a process crash (SIGKILL, nothing closed).
func TestProcessCrash(t *testing.T) {
	dir := t.TempDir()
	out, code := runChild(t, "crash:"+dir)
	if code != -int(syscall.SIGKILL) || !strings.Contains(out, "committed") {
		t.Fatalf("crash child: exit %d, output %q", code, out)
	}
	s := mustOpen(t, kvtest.Options(dir))
	for i, d := range []kv.Durability{kv.WriteNoSync, kv.NoSync} {
		for _, b := range []string{kvtest.Objects, kvtest.Refcounts} {
			v, err := get(t, s, b, []byte(d.String()))
			if err != nil || !bytes.Equal(v, []byte{byte(i)}) {
				t.Fatalf("%s commit lost by a process crash: %s %q, %v", d, b, v, err)
			}
		}
	}
}

// fill writes n records of size bytes with compressible values and closes
// the store, so that the data ends up in table files.
func fill(t *testing.T, dir string, n, size int) {
	t.Helper()
	s := mustOpen(t, kvtest.Options(dir))
	val := bytes.Repeat([]byte("durus object record "), size/20+1)[:size]
	for start := 0; start < n; start += 1000 {
		err := kv.Update(t.Context(), s, kv.NoSync, func(tx kv.Txn) error {
			for i := start; i < min(start+1000, n); i++ {
				if err := tx.Put(kvtest.Objects, []byte(fmt.Sprintf("%08d", i)), val); err != nil {
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
	// Reopening converts the log into a table (LevelDB recovery).
	s = mustOpen(t, kvtest.Options(dir))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func tables(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.ldb"))
	if len(m) == 0 {
		t.Fatalf("no table file in %s", dir)
	}
	return m
}

func TestSnappy(t *testing.T) {
	dir := t.TempDir()
	const n, size = 5000, 1000
	fill(t, dir, n, size)
	var total int64
	for _, f := range tables(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total*4 > n*size {
		t.Fatalf("tables hold %d bytes for %d bytes of very compressible values: snappy is not on", total, n*size)
	}
	if err := leveldb.Verify(dir, -1); err != nil {
		t.Fatalf("verify of a healthy database: %v", err)
	}
}

// readAll reads every record and returns the first error.
func readAll(s kv.Store) error {
	return kv.View(context.Background(), s, func(tx kv.Txn) error {
		c, err := tx.Cursor(kvtest.Objects)
		if err != nil {
			return err
		}
		defer c.Close()
		n := 0
		for ok := c.First(); ok; ok = c.Next() {
			n++
		}
		if err := c.Err(); err != nil {
			return err
		}
		_, err = tx.Get(kvtest.Objects, []byte("00000001"))
		return err
	})
}

func TestCorruptTable(t *testing.T) {
	for _, how := range []string{"truncate", "flip", "flip-middle", "truncate-footer"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			fill(t, dir, 3000, 300)
			tbl := tables(t, dir)[0]
			fi, _ := os.Stat(tbl)
			switch how {
			case "truncate":
				os.Truncate(tbl, fi.Size()/2)
			case "truncate-footer":
				os.Truncate(tbl, 30)
			case "flip", "flip-middle":
				f, err := os.OpenFile(tbl, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				off := int64(100)
				if how == "flip-middle" {
					off = fi.Size() / 2
				}
				b := []byte{0}
				f.ReadAt(b, off)
				b[0] ^= 0x5a
				f.WriteAt(b, off)
				f.Close()
			}
			s, err := leveldb.OpenStore(kvtest.Options(dir))
			if err == nil {
				t.Cleanup(func() { s.Close() })
				err = readAll(s)
			}
			name := filepath.Base(tbl)
			if !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), name) {
				t.Fatalf("reading a database with %s table %s: %v; want kv.ErrCorrupt naming the file", how, name, err)
			}
			t.Logf("%s: %v", how, err)
			verr := leveldb.Verify(dir, -1)
			if !errors.Is(verr, kv.ErrCorrupt) || !strings.Contains(verr.Error(), name) {
				t.Fatalf("Verify: %v", verr)
			}
		})
	}
}

func TestCorruptLog(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	for i := 0; i < 100; i++ {
		put(t, s, kvtest.Objects, []byte(fmt.Sprint(i)), bytes.Repeat([]byte{'v'}, 200))
	}
	// Leave the log unreplayed: simulate a crash by not closing... Close
	// keeps the log, which recovery replays at the next open.
	s.Close()
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var victim string
	for _, l := range logs {
		if fi, _ := os.Stat(l); fi.Size() > 10000 {
			victim = l
		}
	}
	if victim == "" {
		// 20 KB of puts stay in the memtable and its log (LevelDB writes a
		// table at 4 MiB, and Close does not flush): a log without them
		// means the test no longer tests anything.
		t.Fatalf("no log with data to damage among %v", logs)
	}
	f, _ := os.OpenFile(victim, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff, 0xee}, 5000)
	f.Close()
	_, err := leveldb.OpenStore(kvtest.Options(dir))
	if !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(victim)) {
		t.Fatalf("open with a damaged log: %v; want kv.ErrCorrupt naming %s", err, filepath.Base(victim))
	}
	t.Log(err)
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	put(t, s, kvtest.Objects, []byte("k"), []byte("v"))
	s.Close()
	opts := kvtest.Options(dir)
	opts.ReadOnly, opts.Create = true, false
	ro := mustOpen(t, opts)
	if _, err := ro.Begin(t.Context(), true); !errors.Is(err, kv.ErrReadOnly) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("writable Begin on read-only store: %v", err)
	}
	if v, err := get(t, ro, kvtest.Objects, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("read-only get: %q, %v", v, err)
	}
	if err := ro.Flush(); err != nil {
		t.Fatalf("flush of a read-only store: %v", err)
	}
}

func TestBeginWaitsForWriter(t *testing.T) {
	s := mustOpen(t, kvtest.Options(t.TempDir()))
	w, err := s.Begin(t.Context(), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Begin(ctx, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second writer while one is open: %v, want deadline exceeded", err)
	}
	got := make(chan error, 1)
	go func() {
		tx, err := s.Begin(t.Context(), true)
		if err == nil {
			err = tx.Abort()
		}
		got <- err
	}()
	// The property: nothing happens while the first writer holds the slot.
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("second writer did not wait: %v", err)
	default:
	}
	w.Abort()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting writer not released by Abort")
	}
	// A writer waiting in Begin is released by Close.
	w, _ = s.Begin(t.Context(), true)
	go func() {
		_, err := s.Begin(t.Context(), true)
		got <- err
	}()
	// Gives the Begin time to block on the writer slot (nothing to poll);
	// if it has not blocked yet it gets ErrClosed all the same.
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-got:
		if !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("waiting writer after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting writer not released by Close")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
}

// TestFlushAfterRotation writes enough to make LevelDB switch log files
// with NoSync commits, then Flushes; it checks Flush works across the
// switch and the data is all there after reopening.
func TestFlushAfterRotation(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	val := make([]byte, 4096)
	for i := range val {
		val[i] = byte(i * 7)
	}
	for i := 0; i < 3000; i++ { // ~12 MB: several memtable switches
		err := kv.Update(t.Context(), s, kv.NoSync, func(tx kv.Txn) error {
			return tx.Put(kvtest.Objects, []byte(fmt.Sprintf("%06d", i)), val)
		})
		if err != nil {
			t.Fatal(err)
		}
		if i%500 == 0 {
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	oldLogs, dirs := leveldb.LogSyncStats(s)
	t.Logf("log syncer: %d older logs fsynced, %d directory fsyncs", oldLogs, dirs)
	if dirs < 2 {
		t.Fatalf("log files were created but the directory was fsynced %d times", dirs)
	}
	s.Close()
	s = mustOpen(t, kvtest.Options(dir))
	for i := 0; i < 3000; i += 97 {
		if v, err := get(t, s, kvtest.Objects, []byte(fmt.Sprintf("%06d", i))); err != nil || !bytes.Equal(v, val) {
			t.Fatalf("record %d after reopen: %v", i, err)
		}
	}
}

// TestCrashAtomicity SIGKILLs a child in the middle of a stream of
// commits: after reopening, every acknowledged commit is there, and the
// commits present form a prefix, each complete (never half a commit).
func TestCrashAtomicity(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=churn:"+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	buf := make([]byte, 0, 4096)
	deadline := time.Now().Add(30 * time.Second)
	for acked < 300 && time.Now().Before(deadline) {
		tmp := make([]byte, 1024)
		n, err := out.Read(tmp)
		buf = append(buf, tmp[:n]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			var v int
			if _, err := fmt.Sscan(string(buf[:i]), &v); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child said %q", buf[:i])
			}
			acked = v
			buf = buf[i+1:]
		}
		if err != nil {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if acked < 0 {
		t.Fatal("child acknowledged no commit")
	}
	s := mustOpen(t, kvtest.Options(dir))
	lastB, err := get(t, s, kvtest.Meta, []byte("last"))
	if err != nil {
		t.Fatalf("meta last: %v", err)
	}
	var last int
	fmt.Sscan(string(lastB), &last)
	if last < acked {
		t.Fatalf("acknowledged commit %d lost by a process crash (last present %d)", acked, last)
	}
	err = kv.View(t.Context(), s, func(tx kv.Txn) error {
		c, err := tx.Cursor(kvtest.Objects)
		if err != nil {
			return err
		}
		defer c.Close()
		want := 0
		k := 0
		for ok := c.First(); ok; ok = c.Next() {
			exp := fmt.Sprintf("t%08d/k%d", want, k)
			if string(c.Key()) != exp {
				return fmt.Errorf("record %q, want %q (commit %d incomplete or missing)", c.Key(), exp, want)
			}
			if k++; k == churnKeys {
				k, want = 0, want+1
			}
		}
		if k != 0 {
			return fmt.Errorf("commit %d is half there (%d of %d records)", want, k, churnKeys)
		}
		if want != last+1 {
			return fmt.Errorf("records of %d commits, meta last says %d", want, last+1)
		}
		return c.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged %d, present %d commits", acked+1, last+1)
}

// TestCloseUnderLoad closes the store while readers scan and a writer
// commits: every goroutine must end with nil or kv.ErrClosed/kv.ErrTxnDone,
// and nothing may crash (Close must not free iterators in use).
func TestCloseUnderLoad(t *testing.T) {
	for round := 0; round < 5; round++ {
		s, err := leveldb.OpenStore(kvtest.Options(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i++ {
			put(t, s, kvtest.Objects, []byte(fmt.Sprintf("%04d", i)), []byte("v"))
		}
		ok := func(err error) bool {
			return err == nil || errors.Is(err, kv.ErrClosed) || errors.Is(err, kv.ErrTxnDone)
		}
		errc := make(chan error, 8)
		for r := 0; r < 4; r++ {
			go func() {
				for {
					tx, err := s.Begin(context.Background(), false)
					if err != nil {
						errc <- err
						return
					}
					c, err := tx.Cursor(kvtest.Objects)
					if err != nil {
						tx.Abort()
						errc <- err
						return
					}
					for ok := c.First(); ok; ok = c.Next() {
						c.Key()
						c.Value()
					}
					c.Close()
					tx.Abort()
				}
			}()
		}
		go func() {
			for i := 0; ; i++ {
				tx, err := s.Begin(context.Background(), true)
				if err != nil {
					errc <- err
					return
				}
				tx.Put(kvtest.Objects, []byte(fmt.Sprintf("w%06d", i)), []byte("w"))
				c, err := tx.Cursor(kvtest.Objects)
				if err == nil {
					c.Seek([]byte("0100"))
					c.Next()
					c.Prev()
				}
				if err := tx.Commit(kv.NoSync); !ok(err) {
					errc <- err
					return
				}
			}
		}()
		// How long the load runs before Close: varied per round, not a wait.
		time.Sleep(time.Duration(20+round*20) * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatalf("close under load: %v", err)
		}
		for i := 0; i < 5; i++ {
			select {
			case err := <-errc:
				if !ok(err) {
					t.Fatalf("goroutine ended with %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("goroutine still running 20 s after Close")
			}
		}
	}
}

// TestInUseByForeignLevelDB: another process holding only LevelDB's own
// fcntl lock (as a non-durusbdb LevelDB program would) also gives
// kv.ErrInUse naming the directory.
func TestInUseByForeignLevelDB(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, kvtest.Options(dir))
	s.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=holdlock:"+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
	_, err = leveldb.OpenStore(kvtest.Options(dir))
	if !errors.Is(err, kv.ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open while another process holds LOCK: %v", err)
	}
	t.Log(err)
}

// TestVerifySkipsObsoleteTables: a table file that the current MANIFEST
// does not list (the partial output of a compaction that shutdown or a
// kill interrupted, which LevelDB deletes at its next open) is not damage;
// a damaged live table still is.
func TestVerifySkipsObsoleteTables(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 3000, 300)
	live := tables(t, dir)
	if len(live) == 0 {
		t.Fatal("no table files")
	}
	partial := filepath.Join(dir, "999999.ldb")
	if err := os.WriteFile(partial, bytes.Repeat([]byte{7}, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := leveldb.Verify(dir, -1); err != nil {
		t.Fatalf("Verify with an obsolete partial table: %v", err)
	}
	if err := os.Truncate(live[0], 30); err != nil {
		t.Fatal(err)
	}
	if err := leveldb.Verify(dir, -1); !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), filepath.Base(live[0])) {
		t.Fatalf("Verify with a damaged live table: %v", err)
	}
}

// TestCreateBesideIgnorableFiles: the files every layer ignores (internal/
// dbdir) do not stop a LevelDB database from being created: a text log, a
// dotfile, and an interrupted Berkeley DB creation's environment files.
func TestCreateBesideIgnorableFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"x.log.txt", ".keep", "__db.001", "log.0000000001"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, kvtest.Options(dir))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
