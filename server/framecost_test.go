package server

import (
	"encoding/binary"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/wire"
)

// tinyFrames is commit data of the smallest frames (24 bytes: a record
// of oid with no data and no references) for oids.
func tinyFrames(oids []uint64) []byte {
	b := make([]byte, 0, 24*len(oids))
	for _, o := range oids {
		b = binary.BigEndian.AppendUint32(b, minFrame)
		b = binary.BigEndian.AppendUint64(b, o)
		b = binary.BigEndian.AppendUint64(b, o)
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	return b
}

// peakHeap samples HeapAlloc every millisecond until stop is closed and
// returns the largest value seen.
func peakHeap(stop <-chan struct{}) func() uint64 {
	var peak uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	return func() uint64 { wg.Wait(); return peak }
}

// BenchmarkCommitFrameCost measures what one tiny frame of a large commit
// costs the server beyond its 24 bytes of data, in bytes allocated
// (alloc-B/frame) and at the peak of the heap (peak-B/frame), accepted
// (distinct oids) and refused (one oid repeated: rule 5). It is the
// measurement behind frameCost.
func BenchmarkCommitFrameCost(b *testing.B) {
	const n = 200_000
	for _, k := range storeKinds() {
		for _, mode := range []string{"accepted", "refused"} {
			b.Run(k.name+"/"+mode, func(b *testing.B) {
				ts := startServer(b, Config{MaxInflight: 1 << 30}, k.open(b))
				wc, err := wire.Dial(ts.addr, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				defer wc.Close()
				var allocB, peakB float64
				for b.Loop() {
					b.StopTimer()
					oids := make([]uint64, n)
					if mode == "accepted" {
						if oids, err = wc.Alloc(n); err != nil {
							b.Fatal(err)
						}
					} else {
						for i := range oids {
							oids[i] = 5
						}
					}
					data := tinyFrames(oids)
					oids = nil
					var m0, m1 runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&m0)
					stop := make(chan struct{})
					peak := peakHeap(stop)
					b.StartTimer()
					if _, err := wc.Begin(); err != nil {
						b.Fatal(err)
					}
					st, err := wc.Finish(data)
					b.StopTimer()
					close(stop)
					p := peak()
					runtime.ReadMemStats(&m1)
					if err != nil || (mode == "accepted") != (st == 'O') {
						b.Fatalf("status %q, %v", st, err)
					}
					// The data buffer (4/3 of its length at most) is
					// charged already.
					dataCost := float64(len(data)) * 4 / 3
					allocB += (float64(m1.TotalAlloc-m0.TotalAlloc) - dataCost) / n
					peakB += (float64(p) - float64(m0.HeapAlloc) - dataCost) / n
					b.StartTimer()
				}
				b.ReportMetric(allocB/float64(b.N), "alloc-B/frame")
				b.ReportMetric(peakB/float64(b.N), "peak-B/frame")
			})
		}
	}
}

// TestTinyFramesCharged (QA F1, scaled down): a commit of many 24-byte
// frames costs the server several times its data to parse and stage; each
// frame is charged frameCost to the budget of bytes in flight before it is
// parsed, so a commit whose frames do not fit is refused with E instead of
// growing the heap past the budget by a large factor. One whose frames fit
// is accepted, and the charge is released.
func TestTinyFramesCharged(t *testing.T) {
	const budget = 8 << 20
	ts := startServer(t, Config{MaxInflight: budget, InflightWait: 200 * time.Millisecond}, newMemStore())
	wc, err := wire.Dial(ts.addr, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	commit := func(n int) (byte, int64) {
		t.Helper()
		oids, err := wc.Alloc(n)
		if err != nil {
			t.Fatal(err)
		}
		data := tinyFrames(oids)
		oids = nil
		var m0 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		stop := make(chan struct{})
		peak := peakHeap(stop)
		if _, err := wc.Begin(); err != nil {
			t.Fatal(err)
		}
		st, err := wc.Finish(data)
		close(stop)
		if err != nil {
			t.Fatal(err)
		}
		return st, int64(peak()) - int64(m0.HeapAlloc)
	}

	// 4 MiB of data (within the budget, as its buffers are), 174,762
	// frames: 27 MB more to parse and stage.
	const many = (4 << 20) / 24
	st, grew := commit(many)
	if st != 'E' {
		t.Errorf("commit of %d tiny frames (%d bytes) under a budget of %d: status %q, want E", many, many*24, budget, st)
	}
	if grew > budget*3/2 {
		t.Errorf("commit of %d tiny frames grew the heap by %d MB, budget %d MB", many, grew>>20, budget>>20)
	}
	if !containsLog(ts, "with the cost of its frames") {
		t.Errorf("no log line for the refusal")
	}
	t.Logf("%d tiny frames: %q, heap +%d MB", many, st, grew>>20)

	const few = 10_000 // 2.5 MB charged for the frames
	if st, _ := commit(few); st != 'O' {
		t.Fatalf("commit of %d tiny frames: status %q, want O", few, st)
	}
	waitFor(t, 30*time.Second, "the budget to be released", func() bool {
		used, _ := ts.srv.InflightBytes()
		return used == 0
	})
}
