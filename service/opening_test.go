package service

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRefuseWhileOpening: until stop, a client's connection is closed at
// once (it reads EOF, instead of waiting in the backlog for a reply);
// after stop the listener accepts for the server as before.
func TestRefuseWhileOpening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	log, _ := hookLog()
	stop := refuseWhileOpening(ln, log)
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte{'V', 0, 0, 0, 1})
		var b [4]byte
		if n, err := c.Read(b[:]); n != 0 || err == nil || !(err == io.EOF || isReset(err)) {
			t.Fatalf("a client of a site still opening: read %d bytes, %v; want the connection closed", n, err)
		}
		c.Close()
	}
	if n := stop(); n != 3 {
		t.Errorf("stop reports %d refused, want 3", n)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case sc := <-accepted:
		sc.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the listener accepts nothing after stop")
	}
}

// isReset reports a connection reset by the peer.
func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// TestWatchdogSaysWhatASignalWaitsFor: a signal that arrives while the
// database is still opening (a replication site waiting for its group)
// is logged at once with what the server waits for; once open, the
// server's own shutdown says it.
func TestWatchdogSaysWhatASignalWaitsFor(t *testing.T) {
	for _, opened := range []bool{false, true} {
		log, logs := hookLog()
		in := &instance{log: log, finished: make(chan struct{}), quitting: make(chan struct{}), cfg: Config{Dir: "/d", ForceExit: func(string) {}}}
		in.opened.Store(opened)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		go func() { in.watchdog(ctx); close(done) }()
		time.Sleep(50 * time.Millisecond)
		close(in.finished)
		<-done
		if got := strings.Contains(logs.String(), "once the database open returns"); got == opened {
			t.Errorf("opened %v: log %q", opened, logs)
		}
	}
}
