// Command profserve is `durusbdb serve` reduced to what the benchmark suite
// needs, with a CPU profile: it opens a database with package engine, serves
// it with package server on a TCP port, and writes a pprof CPU profile
// (and, with -memprofile, a heap profile) when it receives SIGTERM or
// SIGINT. bench/suite runs it in place of the real server when
// BENCH_PROFILE=1, so that the hottest functions of a missed target can be
// named with file:line (`go tool pprof -top -lines`).
//
// Build with -tags bdb for the Berkeley DB backend.
//
// Usage:
//
//	profserve -dir DIR -create -port P [-backend bdb] [-durability sync] -cpuprofile FILE
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/server"
)

func main() {
	dir := flag.String("dir", "", "database directory")
	create := flag.Bool("create", false, "create the database if dir is empty")
	backend := flag.String("backend", "", "bdb or leveldb for a new database")
	durability := flag.String("durability", "sync", "sync, write-nosync or nosync")
	port := flag.Int("port", 0, "TCP port on 127.0.0.1")
	grace := flag.Duration("gc-grace", engine.DefaultGCGrace, "collector grace period (negative: none)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	memprofile := flag.String("memprofile", "", "write a heap profile here at exit")
	flag.Parse()
	if err := run(*dir, *create, *backend, *durability, *port, *grace, *cpuprofile, *memprofile); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		os.Exit(1)
	}
}

func run(dir string, create bool, backend, durability string, port int, grace time.Duration, cpuprofile, memprofile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dur, err := kv.ParseDurability(durability)
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ln, err := server.Listen(ctx, server.ListenConfig{Host: "127.0.0.1", Port: port, IgnoreSystemd: true})
	if err != nil {
		return err
	}
	db, err := engine.Open(context.WithoutCancel(ctx), dir, engine.Options{
		Create: create, Backend: backend, Durability: dur, GCGrace: grace, Logger: log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	srv := server.New(server.Config{Logger: log}, server.Engine(db))
	serveErr := srv.Serve(ctx, ln)
	closeErr := db.Close()
	if memprofile != "" {
		runtime.GC()
		if f, err := os.Create(memprofile); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if serveErr != nil {
		return serveErr
	}
	return closeErr
}
