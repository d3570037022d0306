package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
)

// TestInflightBudget: charges fit the limit or wait and fail with
// ErrInflight; a shared buffer is charged once until its last holder
// releases it; a reservation adopted by a shared buffer is not counted
// twice.
func TestInflightBudget(t *testing.T) {
	b := newInflight(100, nil)
	ctx := context.Background()
	if err := b.acquire(ctx, 101, time.Second); !errors.Is(err, ErrInflight) {
		t.Fatalf("more than the budget: %v", err)
	}
	if err := b.acquire(ctx, 60, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.acquire(ctx, 50, 50*time.Millisecond); !errors.Is(err, ErrInflight) {
		t.Fatalf("over the budget after the wait: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.acquire(ctx, 50, time.Minute) }()
	waitFor(t, 30*time.Second, "the acquire to wait", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiters) == 1
	})
	b.release(60)
	if err := <-done; err != nil {
		t.Fatalf("a waiter was not woken by a release: %v", err)
	}
	b.release(50)

	buf := make([]byte, 40)
	r1, ok := b.tryShared(1, buf)
	r2, ok2 := b.tryShared(1, buf[:40])
	if !ok || !ok2 || b.usage() != 40 {
		t.Fatalf("two holders of one buffer: used %d, want 40", b.usage())
	}
	r1()
	r1() // idempotent
	if b.usage() != 40 {
		t.Fatalf("after one of two releases: used %d", b.usage())
	}
	r2()
	if b.usage() != 0 {
		t.Fatalf("after the last release: used %d", b.usage())
	}
	if err := b.acquire(ctx, 30, time.Second); err != nil {
		t.Fatal(err)
	}
	r3 := b.adoptShared(1, buf, 30) // grew to 40 meanwhile
	r4, _ := b.tryShared(1, buf)
	if b.usage() != 40 {
		t.Fatalf("adopted buffer: used %d, want 40", b.usage())
	}
	if err := b.acquire(ctx, 30, time.Second); err != nil {
		t.Fatal(err)
	}
	r5 := b.adoptShared(1, buf, 30) // already charged: the reservation goes back
	if b.usage() != 40 {
		t.Fatalf("adopting a charged buffer: used %d, want 40", b.usage())
	}
	r3()
	r4()
	r5()
	if b.usage() != 0 {
		t.Fatalf("after all releases: used %d", b.usage())
	}
}

// TestMachineInflight: the default budget is an eighth of the memory,
// within its bounds.
func TestMachineInflight(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/meminfo"
	os.WriteFile(p, []byte("MemFree: 1 kB\nMemTotal:       24683456 kB\n"), 0o600)
	if got := memTotal(p); got != 24683456<<10 {
		t.Fatalf("memTotal = %d", got)
	}
	os.WriteFile(p, []byte("max\n"), 0o600)
	if cgroupMax(p) != 0 {
		t.Fatal("memory.max of max")
	}
	os.WriteFile(p, []byte("1073741824\n"), 0o600)
	if cgroupMax(p) != 1<<30 {
		t.Fatal("memory.max of 1 GiB")
	}
	if d := MachineInflight(); d < MinDefaultInflight || d > MaxDefaultInflight {
		t.Fatalf("MachineInflight = %d", d)
	}
}

// bigEngine opens a LevelDB engine storage holding root 0 and n records of
// size bytes (oids 1..n, the root referring to all).
func bigEngine(t testing.TB, n, size int) *engineStore {
	t.Helper()
	// No free-space reserve: these tests are about memory, not disk.
	es := openEngine(t, "leveldb", engine.Options{MinFreeSpace: -1})
	if _, err := es.db.AllocOIDs(n + 1); err != nil {
		t.Fatal(err)
	}
	var refs []uint64
	var recs [][]byte
	for i := 1; i <= n; i++ {
		refs = append(refs, uint64(i))
		recs = append(recs, rec(uint64(i), string(bytes.Repeat([]byte{byte('a' + i%26)}, size))))
	}
	recs = append(recs, rec(0, "root", refs...))
	p, err := es.Stage(context.Background(), recs)
	if err == nil {
		err = p.Wait(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// nonReader sends L oid on a connection with a small receive buffer and
// reads only the status byte (and the length if O): the server is left
// writing the rest.
func nonReader(t testing.TB, ts *testServer, oid uint64) (*client, byte) {
	t.Helper()
	c := ts.dialRaw(t)
	c.nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	c.send([]byte{'L'}, u64(oid))
	st := c.read(1)[0]
	if st == 'O' {
		c.read(4)
	}
	return c, st
}

// liveHeap returns the heap in use after a collection.
func liveHeap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestLoadNonReadersShareOneCopy (issue 15 item 2, CI size): 20
// connections load one 10 MB record and never read it; the server holds
// one copy, charged once, not twenty. DURUSBDB_BIG_LOAD_MB sets the record
// size (100 for the figure).
func TestLoadNonReadersShareOneCopy(t *testing.T) {
	size := 10 << 20
	if v := os.Getenv("DURUSBDB_BIG_LOAD_MB"); v != "" {
		mb, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		size = mb << 20
	}
	es := bigEngine(t, 1, size)
	ts := startServer(t, Config{}, es)
	h0 := liveHeap()
	rss0 := rssBytes()
	for range 20 {
		if _, st := nonReader(t, ts, 1); st != 'O' {
			t.Fatalf("load status %q", st)
		}
	}
	used, _ := ts.srv.InflightBytes()
	grew := liveHeap() - h0
	rss := rssBytes() - rss0
	t.Logf("20 non-reading loads of a %d MB record: heap +%d MB, RSS +%d MB, charged %d MB", size>>20, grew>>20, rss>>20, used>>20)
	if used > int64(size)+1<<20 {
		t.Errorf("charged %d bytes for one shared record of %d", used, size)
	}
	if grew > 3*int64(size) {
		t.Errorf("heap grew by %d MB for 20 loads of one %d MB record", grew>>20, size>>20)
	}
	if size >= 100<<20 && rss > 512<<20 {
		t.Errorf("RSS grew by %d MB, want ≤ 512 MB", rss>>20)
	}
}

// rssBytes returns this process's resident set size (VmRSS), 0 if unknown.
func rssBytes() int64 { return memTotalField("/proc/self/status", "VmRSS:") }

// memTotalField reads a "Name: N kB" field of a /proc file in bytes.
func memTotalField(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// TestLoadBudgetRefusesOverflow: distinct large records loaded by
// non-readers are charged each; those that find no room within the wait
// are answered E, and the charge never passes the budget. When the
// readers go, the budget is free again.
func TestLoadBudgetRefusesOverflow(t *testing.T) {
	const size = 4 << 20
	es := bigEngine(t, 6, size)
	ts := startServer(t, Config{MaxInflight: 13 << 20, InflightWait: 200 * time.Millisecond}, es)
	var ok, refused int
	var cs []*client
	for oid := uint64(1); oid <= 6; oid++ {
		c, st := nonReader(t, ts, oid)
		cs = append(cs, c)
		switch st {
		case 'O':
			ok++
		case 'E':
			refused++
		default:
			t.Fatalf("status %q", st)
		}
		if used, limit := ts.srv.InflightBytes(); used > limit {
			t.Fatalf("charged %d over the budget %d", used, limit)
		}
	}
	if ok != 3 || refused != 3 {
		t.Fatalf("%d served, %d refused; want 3 and 3 (three 4 MB replies fit in 13 MB)", ok, refused)
	}
	if !containsLog(ts, "load refused: bytes in flight over the budget") {
		t.Fatalf("no log line for the refusal:\n%s", ts.logs.String())
	}
	for _, c := range cs {
		c.nc.Close()
	}
	waitFor(t, 30*time.Second, "the budget to be released", func() bool {
		used, _ := ts.srv.InflightBytes()
		return used == 0
	})
	c := ts.dial(t)
	if st, r := c.load(6); st != 'O' || len(r) < size {
		t.Fatalf("load after the readers left: %q, %d bytes", st, len(r))
	}
}

// TestLoadMinWriteRate: a client reading a large reply steadily but
// slowly (each write progresses within WriteTimeout) is closed once the
// reply has taken WriteTimeout plus its size at MinWriteRate, before it has
// read the whole reply.
func TestLoadMinWriteRate(t *testing.T) {
	const size = 32 << 20
	es := bigEngine(t, 1, size)
	// 2 s + 32 MB at 32 MB/s: closed after about 3 s; the client reads
	// about 3 MB/s, so it would need more than 10 s for the whole reply.
	ts := startServer(t, Config{WriteTimeout: 2 * time.Second, MinWriteRate: 32 << 20}, es)
	c, st := nonReader(t, ts, 1)
	if st != 'O' {
		t.Fatalf("status %q", st)
	}
	buf := make([]byte, 64<<10)
	got := 0
	for got < size {
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.nc.Read(buf)
		got += n
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the slow reader's pace, not a wait
	}
	if got >= size {
		t.Fatalf("the whole reply was read at ~3 MB/s (%d bytes)", got)
	}
	waitFor(t, 30*time.Second, "the timeout to be logged", func() bool { return containsLog(ts, "request timed out") })
	t.Logf("slow reader closed after %d of %d bytes", got, size)
}

// TestCommitBudget (issue 15 item 2, CI size): commits trickling their
// data are charged as their buffers grow; one that cannot grow within the
// budget is refused with E after its data is discarded, the charge never
// passes the budget, and the live heap stays within it. The staller then
// completes and commits.
func TestCommitBudget(t *testing.T) {
	const size = 6 << 20
	// Room for two commits' buffers and half a third's.
	budget := int64(DataCharge(size)) * 5 / 2
	ts := startServer(t, Config{MaxInflight: budget, InflightWait: 200 * time.Millisecond,
		CommitLease: 100 * time.Millisecond, RequestTimeout: 10 * time.Second}, newMemStore())

	var stop sync.WaitGroup
	maxUsed := int64(0)
	sample := make(chan struct{})
	stop.Go(func() {
		for {
			select {
			case <-sample:
				return
			default:
			}
			if used, _ := ts.srv.InflightBytes(); used > maxUsed {
				maxUsed = used
			}
			time.Sleep(time.Millisecond) // sampling interval
		}
	})

	// Two tricklers send all but the last byte of a 6 MB commit: each
	// is charged its buffers (DataCharge: 64 KiB + 96 KiB + 384 KiB +
	// 1.5 MiB + 6 MiB).
	payload := func(oid uint64) []byte {
		r := rec(oid, string(bytes.Repeat([]byte{'x'}, size-32)))
		return txnData(r)
	}
	var cs []*client
	var datas [][]byte
	for range 3 {
		c := ts.dial(t)
		cs = append(cs, c)
		datas = append(datas, payload(c.newOIDs(1)[0]))
	}
	h0 := liveHeap() // the test's own payloads are live already
	tricklers := cs[:2]
	for i, c := range tricklers {
		d := datas[i]
		c.begin()
		c.send(u32(uint32(len(d))), d[:len(d)-1])
	}
	waitFor(t, 30*time.Second, "both buffers charged", func() bool {
		used, _ := ts.srv.InflightBytes()
		return used >= 2*int64(DataCharge(len(datas[0])))
	})
	// A third commit cannot grow its buffer to 6 MB: refused.
	c3 := cs[2]
	c3.begin()
	if st := c3.commitData(datas[2]); st != 'E' {
		t.Fatalf("commit over the budget: status %q, want E", st)
	}
	if !containsLog(ts, "commit refused: bytes in flight over the budget") {
		t.Fatalf("no log line for the refusal")
	}
	grew := liveHeap() - h0
	// The tricklers finish and commit.
	// Both lost the token to the lease, so the second to pin it may find
	// the first's commit applied since its phase 1 (rule 9: I).
	for i, c := range tricklers {
		d := datas[i]
		c.send(d[len(d)-1:])
		if st := c.read(1)[0]; st != 'O' && (i == 0 || st != 'I') {
			t.Fatalf("trickler %d: status %q", i, st)
		}
	}
	close(sample)
	stop.Wait()
	if maxUsed > budget {
		t.Fatalf("charged up to %d, over the budget %d", maxUsed, budget)
	}
	if grew > budget+4<<20 {
		t.Fatalf("heap grew by %d MB with a %d MB budget", grew>>20, budget>>20)
	}
	waitFor(t, 30*time.Second, "the budget to be released", func() bool {
		used, _ := ts.srv.InflightBytes()
		return used == 0
	})
	t.Logf("max charged %d MB, heap +%d MB", maxUsed>>20, grew>>20)
}

// TestInflightDeadlockBroken: two growing requests each hold part of the
// budget and wait for more than is left; neither can proceed until one
// gives up, so the smaller holder is refused at once (not after its wait)
// and the other then gets its room.
func TestInflightDeadlockBroken(t *testing.T) {
	b := newInflight(100, nil)
	ctx := context.Background()
	if err := b.acquire(ctx, 20, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.acquire(ctx, 40, time.Second); err != nil {
		t.Fatal(err)
	}
	big := make(chan error, 1)
	go func() { big <- b.acquireHolding(ctx, 50, 40, time.Minute) }()
	waitFor(t, 30*time.Second, "the first waiter", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiters) == 1
	})
	small := make(chan error, 1)
	go func() { small <- b.acquireHolding(ctx, 50, 20, time.Minute) }()
	select {
	case err := <-small:
		if !errors.Is(err, ErrInflight) {
			t.Fatalf("the smaller holder: %v", err)
		}
	case err := <-big:
		t.Fatalf("the larger holder gave up: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the deadlock was not broken (waits are a minute)")
	}
	b.release(20) // the refused request lets go of what it held
	select {
	case err := <-big:
		if err != nil {
			t.Fatalf("the larger holder: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the larger holder did not get its room")
	}
	if b.usage() != 90 {
		t.Fatalf("used %d, want 90", b.usage())
	}
}
