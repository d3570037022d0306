package metrics

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// probeBound is how long a fresh /healthz may take while MaxConns
// connections are held by other clients.
const probeBound = 3 * time.Second

// listenOK starts a metrics listener whose /healthz answers 200.
func listenOK(t *testing.T) (*Endpoint, string) {
	t.Helper()
	m := New(Options{NoRuntime: true})
	m.SetProbes(Probes{Store: &fakeStore{dir: t.TempDir()}, Timeout: time.Second})
	ep, err := m.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close(context.Background()) })
	return ep, ep.Addr().String()
}

// holdConns opens n connections to addr, runs hold on each, and closes
// them at the end of the test.
func holdConns(t *testing.T, addr string, n int, hold func(net.Conn)) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		hold(c)
	}
}

// probeWithin GETs /healthz on a fresh connection and fails the test unless
// a 200 comes within probeBound.
func probeWithin(t *testing.T, addr string) {
	t.Helper()
	start := time.Now()
	cl := &http.Client{Timeout: probeBound, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with %d connections held: %v (after %v)", MaxConns, err, time.Since(start))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d %q", resp.StatusCode, body)
	}
}

// TestListenIdleKeepAliveClients: MaxConns connections that each made a
// keep-alive request and then idle (QA's mhold.py keepalive) do not keep a
// fresh /healthz out.
func TestListenIdleKeepAliveClients(t *testing.T) {
	_, addr := listenOK(t)
	holdConns(t, addr, MaxConns, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.SetDeadline(time.Time{})
	})
	probeWithin(t, addr)
}

// TestListenSilentClients: MaxConns connections that never send a byte do
// not keep a fresh /healthz out.
func TestListenSilentClients(t *testing.T) {
	_, addr := listenOK(t)
	holdConns(t, addr, MaxConns, func(net.Conn) {})
	probeWithin(t, addr)
}

// TestListenHeaderTricklers: MaxConns connections sending their request
// headers a byte every 200 ms (slowloris) do not keep a fresh /healthz out,
// and the listener still counts at most MaxConns connections.
func TestListenHeaderTricklers(t *testing.T) {
	ep, addr := listenOK(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	holdConns(t, addr, MaxConns, func(c net.Conn) {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := io.WriteString(c, "X"); err != nil {
						return
					}
				}
			}
		}()
	})
	probeWithin(t, addr)
	// A burst beyond the limit is not all kept open.
	holdConns(t, addr, 2*MaxConns, func(net.Conn) {})
	probeWithin(t, addr)
	if ll, ok := ep.ln.(*limitListener); !ok {
		t.Errorf("listener %T, want a *limitListener", ep.ln)
	} else if n := ll.open(); n > MaxConns {
		t.Errorf("%d connections open, want <= %d", n, MaxConns)
	}
}

// TestListenReadHeaderTimeout: a connection that does not finish its
// headers is closed after ReadHeaderTimeout.
func TestListenReadHeaderTimeout(t *testing.T) {
	if ReadHeaderTimeout > 5*time.Second {
		t.Fatalf("ReadHeaderTimeout = %v, want a few seconds", ReadHeaderTimeout)
	}
	_, addr := listenOK(t)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /healthz HTTP/1.1\r\n")
	start := time.Now()
	c.SetReadDeadline(start.Add(ReadHeaderTimeout + 5*time.Second))
	io.Copy(io.Discard, c) // until the server closes (or the deadline)
	if d := time.Since(start); d > ReadHeaderTimeout+2*time.Second {
		t.Errorf("connection open %v after a partial request, want about %v", d, ReadHeaderTimeout)
	}
}

// TestListenNoKeepAlive: the listener closes each connection after its
// response.
func TestListenNoKeepAlive(t *testing.T) {
	_, addr := listenOK(t)
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Error("response without Connection: close")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the response: %v, want EOF", err)
	}
}

// TestLimitListenerBusy: a connection whose handler runs is not evicted;
// a new connection waits for one to end, then takes the place of the oldest
// connection not running a handler.
func TestLimitListenerBusy(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(raw, 2)
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", raw.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() *trackedConn {
		select {
		case c := <-accepted:
			return c.(*trackedConn)
		case <-time.After(2 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	dial()
	a := next()
	dial()
	b := next()
	l.setBusy(a, true)
	l.setBusy(b, true)
	dial()
	select {
	case <-accepted:
		t.Fatal("accepted a third connection while two handlers run")
	case <-time.After(200 * time.Millisecond):
	}
	l.setBusy(b, false)
	next()
	if n := l.open(); n != 2 {
		t.Errorf("%d open, want 2", n)
	}
	// b, not running a handler, was closed.
	if _, err := b.Write([]byte("x")); err == nil {
		t.Error("the idle connection was not closed")
	}
	if _, err := a.Write([]byte("x")); err != nil {
		t.Errorf("the busy connection was closed: %v", err)
	}
	l.Close()
	if _, ok := <-accepted; ok {
		t.Error("Accept after Close")
	}
}
