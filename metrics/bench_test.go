package metrics

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/internal/wire"
	"github.com/durusbdb/durusbdb/server"
)

// BenchmarkObserverLoad: the observer calls of one L request (request,
// status, bytes in, bytes out), from parallel goroutines.
func BenchmarkObserverLoad(b *testing.B) {
	m := New(Options{NoRuntime: true})
	var o server.Observer = m
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o.Request('L')
			o.Load('O')
			o.BytesRead(9)
			o.BytesWritten(120)
		}
	})
}

// BenchmarkServerLoad: L of a small record over 8 connections to a real
// server (LevelDB engine), without and with the metrics observer.
func BenchmarkServerLoad(b *testing.B) {
	for _, withMetrics := range []bool{false, true} {
		name := "nil"
		if withMetrics {
			name = "metrics"
		}
		b.Run(name, func(b *testing.B) {
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			db, err := engine.Open(context.Background(), b.TempDir(), engine.Options{Create: true, Backend: "leveldb", Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			cfg := server.Config{Logger: quiet}
			if withMetrics {
				cfg.Observer = New(Options{})
			}
			srv := server.New(cfg, server.Engine(db))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(context.Background(), ln) }()
			defer func() { srv.Close(); <-done }()

			var sent, received int64
			c := dialRaw(b, ln.Addr().String(), &sent, &received)
			c.newOIDs(1)
			if _, st := c.commit(rec(0, "root-record-of-some-size-------------------------------------")); st != 'O' {
				b.Fatal(st)
			}
			const conns = 8
			work := make(chan struct{}, conns)
			var wg sync.WaitGroup
			for range conns {
				wc, err := wire.Dial(ln.Addr().String(), 5*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				wc.Timeout = 0
				defer wc.Close()
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						if st, err := wc.LoadStatus(0); err != nil || st != 'O' {
							b.Errorf("load: %q %v", st, err)
							return
						}
					}
				}()
			}
			b.ResetTimer()
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			wg.Wait()
		})
	}
}
