package service

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"
)

// refuseWhileOpening accepts and at once closes every connection that
// reaches ln until the returned stop is called, and then leaves ln ready
// for the server's own accept loop. A replicated site opens its database
// only once it has found its group (a quorum to elect, or a master to
// sync from), which may take as long as the rest of the group stays
// down: its clients must fail at once and try another site
// (berkeleydb_storage.ReplicatedConnection), not wait in the listen
// backlog without bound for a version reply. stop reports how many
// connections were refused. A listener without deadlines is left alone
// (stop then reports 0).
func refuseWhileOpening(ln net.Listener, log *slog.Logger) (stop func() int) {
	dl, ok := ln.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return func() int { return 0 }
	}
	quit, done := make(chan struct{}), make(chan int, 1)
	go func() {
		n := 0
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				select {
				case <-quit:
					done <- n
					return
				default:
				}
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				if errors.Is(err, net.ErrClosed) {
					done <- n
					return
				}
				time.Sleep(10 * time.Millisecond) // EMFILE and friends: the server's loop waits them out too
				continue
			}
			if n == 0 {
				log.Info("closing client connections until the database is open (a replication site waits for its group)", "client", c.RemoteAddr().String())
			}
			n++
			c.Close()
		}
	}()
	return func() int {
		close(quit)
		dl.SetDeadline(time.Unix(1, 0)) // wakes the Accept
		n := <-done
		dl.SetDeadline(time.Time{})
		return n
	}
}

// socketActivated reports whether the client listener is the socket
// systemd passed (LISTEN_PID names this process): there a connection that
// arrives before the database is open is the one that started the
// service, and waits for it.
func socketActivated() bool {
	return os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid())
}
