// Package netaccept runs a listener's accept loop that outlives transient
// failures. A flood of connections that runs the process out of file
// descriptors makes accept fail with EMFILE until some close; a loop that
// gave up on that error would leave the listener dead for the rest of the
// process's life (the control socket did). Loop backs off instead, 5 ms
// doubling to 1 s, as net/http does.
package netaccept

import (
	"errors"
	"net"
	"time"
)

// Retry bounds the back-off between failed accepts.
const (
	firstDelay = 5 * time.Millisecond
	maxDelay   = time.Second
)

// Loop accepts connections from ln and passes each to handle (on Loop's
// goroutine: handle must not block) until ln is closed or stop is closed,
// and then returns nil. A temporary failure (EMFILE, ENFILE, ENOBUFS, a
// timeout, ECONNABORTED) is reported to retried, if not nil, with the wait
// before the next try; any other error ends the loop and is returned.
func Loop(ln net.Listener, stop <-chan struct{}, handle func(net.Conn), retried func(err error, delay time.Duration)) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			delay = 0
			handle(c)
			continue
		}
		select {
		case <-stop:
			return nil
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if !Temporary(err) {
			return err
		}
		delay = min(max(2*delay, firstDelay), maxDelay)
		if retried != nil {
			retried(err, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return nil
		}
	}
}

// Temporary reports whether an accept error is worth retrying: the net
// package's temporary errors (EMFILE, ENFILE, ENOBUFS, ENOMEM,
// ECONNABORTED, ECONNRESET on accept) and timeouts.
func Temporary(err error) bool {
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
