package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/engine"
)

// Tools on a live database (package control): when a server holds the
// directory, a tool's open fails with kv.ErrInUse; the tool then sends
// its command line to the server's control socket (routeLive), and the
// server runs the same command (controlHandler) with a liveServer in the
// context: openTool then hands out the server's own open database.

// liveCommands are the commands a server runs for a client.
var liveCommands = map[string]bool{
	"stats": true, "check": true, "checkpoint": true, "gc": true, "export": true, "backup": true,
	"analyze": true, "refs": true, "dump": true, "repl": true,
}

type liveKey struct{}

// liveServer is what a command run by the server (for a control socket
// client) sees of that server.
type liveServer struct {
	db      *engine.DB
	resp    *control.Response
	conns   func() int // client connections served now
	started time.Time  // when the server opened the database
}

// liveFrom returns the server a command runs in, or nil when it runs in
// its own process.
func liveFrom(ctx context.Context) *liveServer {
	lv, _ := ctx.Value(liveKey{}).(*liveServer)
	return lv
}

// openTool opens the database for a tool. In a server (control socket
// request) it returns the server's database and a no-op close; otherwise
// it opens f.dir (dbFlags.open) and a close of that DB. An error wrapping
// kv.ErrInUse means a server holds the directory: see routeLive.
func (f *dbFlags) openTool(ctx context.Context, cio cmdIO, opts engine.Options) (*engine.DB, *liveServer, func(), error) {
	if lv := liveFrom(ctx); lv != nil {
		return lv.db, lv, func() {}, nil
	}
	db, err := f.open(ctx, cio, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	return db, nil, func() { db.Close() }, nil
}

// liveReplica returns an error for a command run in the server of a live
// replica that must run on the master (what it cannot do there, why),
// naming the master's address when known; nil elsewhere.
func liveReplica(lv *liveServer, db *engine.DB, dir, why string) error {
	if lv == nil || !db.IsReplica() {
		return nil
	}
	master := db.Role().MasterDurusAddr
	if master == "" {
		master = "no master known now"
	}
	return fmt.Errorf("%s is a live replica: %s: run it on the master (%s), or stop this site and run it on its directory", dir, why, master)
}

// routeLive runs `durusbdb name args...` in the server that holds dir,
// through its control socket, copying its output to cio. inUse is the
// error of the local open; if no server answers, the error names both.
func routeLive(ctx context.Context, cio cmdIO, dir, name string, args []string, inUse error) error {
	ex, err := control.Run(ctx, dir, control.Request{Command: name, Args: args, Env: durusEnv(cio.environ)}, cio.stdout, cio.stderr)
	var fe *control.FileError
	if errors.As(err, &fe) {
		// The server ran the command; this process could not write its
		// output: that, not the control socket, is what failed.
		return fmt.Errorf("%s --dir %s (run by the server that holds it): %w", name, dir, err)
	}
	if err != nil {
		return fmt.Errorf("%w; and the command could not run through the server's control socket either: %w", inUse, err)
	}
	return exitToError(ex)
}

// exitToError maps a server's Exit to this process's error.
func exitToError(ex control.Exit) error {
	switch {
	case ex.Code == 0:
		return nil
	case ex.Usage:
		return &usageError{ex.Error}
	}
	return &exitError{ex.Code, errors.New(ex.Error)}
}

// durusEnv returns the DURUSBDB_* variables of environ.
func durusEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "DURUSBDB_") {
			out = append(out, kv)
		}
	}
	return out
}

// controlHandler runs control socket requests in a server: the command's
// own code, with the server's database.
func controlHandler(db *engine.DB, conns func() int) control.Handler {
	started := time.Now()
	return func(ctx context.Context, req control.Request, r *control.Response) control.Exit {
		if !liveCommands[req.Command] {
			return control.Exit{Code: exitUsage, Usage: true,
				Error: fmt.Sprintf("%q cannot run through the control socket (only stats, check, checkpoint, gc, export, backup, analyze, refs, dump, repl)", req.Command)}
		}
		lv := &liveServer{db: db, resp: r, conns: conns, started: started}
		cio := cmdIO{stdin: strings.NewReader(""), stdout: r.Stdout(), stderr: r.Stderr(), environ: req.Env}
		args := append([]string{req.Command}, req.Args...)
		return errorToExit(execute(context.WithValue(ctx, liveKey{}, lv), cio, args))
	}
}

// errorToExit maps a command's error to the Exit sent to the client, as
// run maps it to an exit code.
func errorToExit(err error) control.Exit {
	if err == nil {
		return control.Exit{}
	}
	var ue *usageError
	var ee *exitError
	switch {
	case errors.As(err, &ue):
		return control.Exit{Code: exitUsage, Error: err.Error(), Usage: true}
	case errors.As(err, &ee):
		return control.Exit{Code: ee.code, Error: err.Error()}
	}
	return control.Exit{Code: exitFailed, Error: err.Error()}
}
