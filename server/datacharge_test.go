package server

import (
	"strings"
	"testing"
	"time"
)

// dataBufs grows the buffers of a commit's data so that their sum, all
// charged while the commit is decided, stays within 4/3 of its length plus
// the first buffer (QA: buffers growing fourfold from 64 KiB had charged up
// to 2.3 times the length, so a 24 MB commit was refused under a 32 MiB
// budget).
func TestDataBufsWithinFourThirds(t *testing.T) {
	ns := []int{0, 1, 1000, initialDataBuf - 1, initialDataBuf, initialDataBuf + 1,
		4*initialDataBuf + 1, 1<<20 - 1, 1 << 20, 1<<20 + 1, 5 << 20, 24_000_000, 1<<30 + 7, MaxCommitLimit}
	for i := range 2000 {
		ns = append(ns, 1+i*i*997)
	}
	for _, n := range ns {
		sizes := dataBufs(n)
		if n == 0 {
			if len(sizes) != 0 {
				t.Errorf("n=0: %v", sizes)
			}
			continue
		}
		var sum int
		for j, s := range sizes {
			if j > 0 && s <= sizes[j-1] {
				t.Fatalf("n=%d: sizes not increasing: %v", n, sizes)
			}
			if j > 0 && s > 4*sizes[j-1]+4 {
				t.Fatalf("n=%d: a buffer more than four times the last: %v", n, sizes)
			}
			sum += s
		}
		if sizes[0] != min(n, initialDataBuf) || sizes[len(sizes)-1] != n {
			t.Fatalf("n=%d: sizes %v, want from %d to %d", n, sizes, min(n, initialDataBuf), n)
		}
		if limit := DataCharge(n); sum != limit {
			t.Fatalf("n=%d: DataCharge %d, the sizes sum to %d", n, limit, sum)
		}
		if float64(sum) > float64(n)*4/3+initialDataBuf {
			t.Errorf("n=%d: buffers %v sum to %d, %.2f times the length", n, sizes, sum, float64(sum)/float64(n))
		}
	}
}

// A commit whose buffers fit the budget by 4/3 is accepted; one whose
// buffers can never fit it is refused at once, not after --inflight-wait.
func TestCommitChargeFitsBudget(t *testing.T) {
	const n = 5<<18 + 2 // fourfold growth from 64 KiB charged 2.05 times this
	const budget = n*4/3 + initialDataBuf + 64<<10
	ts := startServer(t, Config{MaxInflight: budget, InflightWait: 20 * time.Second}, newMemStore())
	c := ts.dial(t)
	oid := c.newOIDs(1)[0]
	payload := strings.Repeat("x", n-len(txnData(rec(oid, ""))))
	data := txnData(rec(oid, payload))
	if len(data) != n {
		t.Fatalf("data of %d bytes, want %d", len(data), n)
	}
	c.begin()
	if st := c.commitData(data); st != 'O' {
		t.Fatalf("commit of %d bytes under a budget of %d: %q, want O", n, budget, st)
	}

	// Within the budget by its length, not by its buffers.
	big := txnData(rec(oid, strings.Repeat("y", budget*9/10)))
	if DataCharge(len(big)) <= budget {
		t.Fatalf("the never-fitting commit's buffers (%d bytes) fit the budget", DataCharge(len(big)))
	}
	start := time.Now()
	c.begin()
	if st := c.commitData(big); st != 'E' {
		t.Fatalf("commit of %d bytes under a budget of %d: %q, want E", len(big), budget, st)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("a commit that can never fit was refused after %v (--inflight-wait 20s)", waited)
	}
	if !containsLog(ts, "more than the whole budget") {
		t.Error("the refusal does not say the commit can never fit")
	}
}

// dataBufs is the sizes of the buffers readData grows for n bytes of
// commit data, in order.
func dataBufs(n int) []int {
	if n <= 0 {
		return nil
	}
	sizes := []int{min(n, initialDataBuf)}
	for cur := sizes[0]; cur < n; {
		cur = nextDataBuf(n, cur)
		sizes = append(sizes, cur)
	}
	return sizes
}
