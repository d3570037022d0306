// Command durusbdb is the one CLI of durusbdb: a Durus storage server over
// Berkeley DB (or LevelDB) and the tools to operate it. Each subcommand lives
// in its own file cmd_<name>.go; main only dispatches.
//
// Exit codes: 0 success; 1 the command failed; 2 bad usage (unknown command
// or flag, missing argument); 3 `check` found problems.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	// Limits glibc malloc arenas at start (the storage libraries' memory).
	_ "github.com/durusbdb/durusbdb/cgo/malloc"
)

// Exit codes, documented in the package comment and docs/OPERATIONS.md.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitProblems = 3
)

// command is one subcommand: its flags are parsed by run itself.
type command struct {
	name    string
	summary string // one line for the command list
	usage   string // "durusbdb name [flags] ARGS"
	example string // shown by --help
	run     func(ctx context.Context, io cmdIO, args []string) error
}

// cmdIO carries the process streams so commands are testable.
type cmdIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string // KEY=value pairs; DURUSBDB_* set unset flags
}

// usageError marks a bad invocation (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitError carries a specific exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func commands() []*command {
	cs := []*command{
		versionCommand(),
		serveCommand(),
	}
	cs = append(cs, extraCommands()...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, cmdIO{os.Stdin, os.Stdout, os.Stderr, os.Environ()}, os.Args[1:]))
}

// run dispatches args to a subcommand and maps its error to an exit code.
func run(ctx context.Context, cio cmdIO, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(cio.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, cio, args[1:])
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(cio.stderr, "durusbdb %s: %v\n", c.name, err)
		var ue *usageError
		var ee *exitError
		switch {
		case errors.As(err, &ue):
			fmt.Fprintf(cio.stderr, "usage: %s (see durusbdb %s --help)\n", c.usage, c.name)
			return exitUsage
		case errors.As(err, &ee):
			return ee.code
		}
		return exitFailed
	}
	fmt.Fprintf(cio.stderr, "durusbdb: unknown command %q (see durusbdb --help)\n", args[0])
	return exitUsage
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "durusbdb: a Durus storage server on Berkeley DB\n\nusage: durusbdb COMMAND [flags] [args]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'durusbdb COMMAND --help' for a command's flags and an example.\nExit codes: 0 ok, 1 failed, 2 bad usage, 3 check found problems.")
}

// newFlagSet makes a FlagSet whose --help prints usage, example and flags,
// and whose parse errors become usage errors.
func newFlagSet(c *command, cio cmdIO) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, printing help on -h and wrapping errors as usage
// errors, then fills unset flags from DURUSBDB_* variables and the --config
// file (see applyConfig).
func parseFlags(c *command, cio cmdIO, fs *flag.FlagSet, args []string) error {
	_, err := parseConfigFlags(c, cio, fs, args)
	return err
}

// parseConfigFlags is parseFlags that also returns each flag's source.
func parseConfigFlags(c *command, cio cmdIO, fs *flag.FlagSet, args []string) (map[string]string, error) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(cio.stdout, "usage: %s\n\n%s\n", c.usage, c.summary)
		if c.example != "" {
			fmt.Fprintf(cio.stdout, "\nexample:\n  %s\n", c.example)
		}
		fmt.Fprintln(cio.stdout, "\nflags:")
		fs.SetOutput(cio.stdout)
		fs.PrintDefaults()
		fmt.Fprintln(cio.stdout, "\nEvery flag can also be set by the environment variable DURUSBDB_<FLAG> (e.g. DURUSBDB_CACHE_SIZE).")
		return nil, flag.ErrHelp
	}
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	return applyConfig(fs, cio.environ)
}
