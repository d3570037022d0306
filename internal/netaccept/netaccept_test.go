package netaccept

import (
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first n accepts with err, then accepts from the
// real listener.
type flakyListener struct {
	net.Listener
	mu  sync.Mutex
	n   int
	err error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// TestLoopOutlivesEMFILE: accepts that fail with EMFILE (descriptors used
// up) are retried with a growing wait, reported each time, and the next
// connection is served; closing the listener then ends the loop with nil.
func TestLoopOutlivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: ln, n: 3, err: emfile()}
	got := make(chan net.Conn, 1)
	var delays []time.Duration
	done := make(chan error, 1)
	go func() {
		done <- Loop(fl, nil, func(c net.Conn) { got <- c }, func(err error, d time.Duration) { delays = append(delays, d) })
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-got:
		sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no connection served after EMFILE")
	}
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("Loop after close: %v", err)
	}
	if want := []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}; len(delays) != 3 || delays[0] != want[0] || delays[1] != want[1] || delays[2] != want[2] {
		t.Fatalf("retry delays %v, want %v", delays, want)
	}
}

// TestLoopStops: a loop waiting out a failure ends when stop closes, and a
// permanent error ends it with that error.
func TestLoopStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Loop(&flakyListener{Listener: ln, n: 1 << 30, err: emfile()}, stop, func(c net.Conn) { c.Close() }, nil)
	}()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Loop after stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Loop did not stop")
	}
	perm := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EINVAL)}
	if err := Loop(&flakyListener{Listener: ln, n: 1, err: perm}, nil, func(c net.Conn) { c.Close() }, nil); err != perm {
		t.Fatalf("Loop on EINVAL: %v, want it returned", err)
	}
}
