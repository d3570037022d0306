// Command profserve is `durusbdb serve` reduced to what the benchmark suite
// needs, with a CPU profile: it serves a database on a TCP port with
// service.Serve (the same code as `durusbdb serve`), and writes a pprof CPU profile
// (and, with -memprofile, a heap profile) when it receives SIGTERM or
// SIGINT. bench/suite runs it in place of the real server when
// BENCH_PROFILE=1, so that the hottest functions of a missed target can be
// named with file:line (`go tool pprof -top -lines`).
//
// With -migrate FILE it does not serve: it imports the Durus file into a
// new database as `durusbdb migrate` does (engine.Import of the
// filestorage reader's records, collector off) under the CPU profile.
//
// Build with -tags bdb for the Berkeley DB backend.
//
// Usage:
//
//	profserve -dir DIR -create -port P [-backend bdb] [-durability sync] -cpuprofile FILE
//	profserve -dir DIR -create -backend bdb -migrate FILE.durus -cpuprofile FILE
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
	"runtime/trace"
	"syscall"
	"time"

	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/durusbdb/durusbdb/server"
	"github.com/durusbdb/durusbdb/service"
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
	migrate := flag.String("migrate", "", "import this Durus file instead of serving")
	tracefile := flag.String("trace", "", "write a runtime/trace execution trace here (go tool trace -pprof=sync|net|syscall|sched)")
	flag.Parse()
	if *tracefile != "" {
		f, err := os.Create(*tracefile)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "profserve:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer trace.Stop()
	}
	if *migrate != "" {
		if err := runMigrate(*dir, *backend, *migrate, *cpuprofile); err != nil {
			fmt.Fprintln(os.Stderr, "profserve:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*dir, *create, *backend, *durability, *port, *grace, *cpuprofile, *memprofile); err != nil {
		fmt.Fprintln(os.Stderr, "profserve:", err)
		trace.Stop()
		os.Exit(1)
	}
}

// run serves dir with service.Serve, the server of `durusbdb serve`, until
// SIGTERM or SIGINT, then writes the heap profile.
func run(dir string, create bool, backend, durability string, port int, grace time.Duration, cpuprofile, memprofile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dur, err := kv.ParseDurability(durability)
	if err != nil {
		return err
	}
	err = service.Serve(ctx, service.Config{
		Dir:        dir,
		Listen:     server.ListenConfig{Host: "127.0.0.1", Port: port, IgnoreSystemd: true},
		Engine:     engine.Options{Create: create, Backend: backend, Durability: dur, GCGrace: grace},
		Log:        service.LogConfig{Level: slog.LevelWarn, Stderr: os.Stderr},
		CPUProfile: cpuprofile,
		Version:    "profserve",
	})
	if memprofile != "" {
		runtime.GC()
		if f, err := os.Create(memprofile); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	return err
}

// runMigrate imports file into a new database in dir under a CPU profile.
func runMigrate(dir, backend, file, cpuprofile string) error {
	ctx := context.Background()
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
	r, err := filestorage.Open(file, filestorage.ReadOptions{})
	if err != nil {
		return err
	}
	defer r.Close()
	db, err := engine.Open(ctx, dir, engine.Options{Create: true, Backend: backend, GC: engine.GCPolicy{Mode: engine.GCManual},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	t0 := time.Now()
	st, err := db.Import(ctx, func(yield func([]byte) error) error { return r.Records(ctx, yield) }, engine.ImportOptions{})
	if err != nil {
		db.Close()
		return err
	}
	el := time.Since(t0)
	if err := db.Close(); err != nil {
		return err
	}
	fmt.Printf("imported %d records, %d bytes in %.2f s (%.1f MB/s of records; close after %.2f s)\n",
		st.Records, st.Bytes, el.Seconds(), float64(st.Bytes)/el.Seconds()/1e6, time.Since(t0).Seconds())
	return nil
}
