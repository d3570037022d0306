// Command durusbdb is the one CLI of durusbdb: a Durus storage server over
// Berkeley DB (or LevelDB) and the tools to operate it. Each subcommand lives
// in its own file cmd_<name>.go and maps its flags to library calls (serve:
// service.Serve); main builds the command tree (spf13/cobra, flags by
// spf13/pflag: flags anywhere on the line, `help CMD`, `--version`,
// `completion bash|zsh|fish`) and maps errors to exit codes.
//
// Settings come from, strongest first: the command line, an environment
// variable DURUSBDB_<FLAG> (only for flags the command has), a line of the
// --config file (serve, backup), the flag's default.
//
// Exit codes: 0 success; 1 the command failed; 2 bad usage (unknown command
// or flag, missing argument, a bad value on the command line, in the
// environment or in the config file); 3 `check` found problems.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	// Limits glibc malloc arenas at start (the storage libraries' memory).
	_ "github.com/durusbdb/durusbdb/cgo/malloc"
	"github.com/durusbdb/durusbdb/internal/sysmon"
	"github.com/spf13/pflag"
)

// Exit codes, documented in the package comment and docs/OPERATIONS.md.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitProblems = 3
)

// runFunc runs a subcommand once its flags are parsed and filled from the
// environment and the config file. args is the subcommand's whole command
// line (flags included: a tool routed to a live server sends it on); the
// positional arguments are the FlagSet's Args.
type runFunc func(ctx context.Context, cio cmdIO, args []string) error

// command is one subcommand: setup defines its flags on fs and returns
// the function that runs it.
type command struct {
	name    string
	summary string // one line for the command list
	usage   string // "durusbdb name [flags] ARGS"
	example string // shown by --help
	setup   func(fs *pflag.FlagSet) runFunc
}

// cmdIO carries the process streams so commands are testable.
type cmdIO struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string // KEY=value pairs; DURUSBDB_* set unset flags
	// reexec replaces the process with the same program run with env
	// (serve's --keep-sysmon-awake); nil in tests that run commands in
	// the test process, where serve runs as it is.
	reexec func(env []string) error
	// argv is the subcommand's command line without its name, and src
	// where each flag's value came from (both filled before run).
	argv []string
	src  sources
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

// cmdError is an error returned by a subcommand's run (not by parsing):
// it names the subcommand for the message.
type cmdError struct {
	name string
	err  error
}

func (e *cmdError) Error() string { return e.err.Error() }
func (e *cmdError) Unwrap() error { return e.err }

// errNoCommand: durusbdb without a command (the usage is printed; exit 2).
var errNoCommand = errors.New("no command given")

func commands() []*command {
	cs := []*command{
		versionCommand(),
		serveCommand(),
		checkCommand(),
		gcCommand(),
		checkpointCommand(),
		statsCommand(),
		migrateCommand(),
		exportCommand(),
		copyCommand(),
		backupCommand(),
		restoreCommand(),
		recoverCommand(),
		upgradeCommand(),
		analyzeCommand(),
		refsCommand(),
		dumpCommand(),
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, cmdIO{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ(), reexec: sysmon.Exec}, os.Args[1:]))
}

// run runs the command line args and maps its error to an exit code.
func run(ctx context.Context, cio cmdIO, args []string) int {
	err := execute(ctx, cio, args)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errNoCommand) {
		return exitUsage
	}
	prefix, usage := "durusbdb", "durusbdb --help"
	var ce *cmdError
	if errors.As(err, &ce) {
		prefix += " " + ce.name
		usage = "durusbdb help " + ce.name
	}
	fmt.Fprintf(cio.stderr, "%s: %v\n", prefix, err)
	return exitCode(err, cio.stderr, usage)
}

// exitCode is the exit code of a command's error; for bad usage it also
// says where help is.
func exitCode(err error, stderr io.Writer, usage string) int {
	var ue *usageError
	var ee *exitError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "(see %s)\n", usage)
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitFailed
}

// execute parses args with the command tree and runs the subcommand.
// Errors of parsing are usage errors; a subcommand's own error comes
// back as a *cmdError.
func execute(ctx context.Context, cio cmdIO, args []string) error {
	root := newRoot(&cio)
	args = longFlags(root, args)
	cio.argv = subArgs(args)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ce *cmdError
	if err == nil || errors.As(err, &ce) || errors.Is(err, errNoCommand) {
		return err
	}
	var ue *usageError
	if !errors.As(err, &ue) {
		err = &usageError{err.Error()}
	}
	if cmd != nil && cmd != root {
		return &cmdError{name: cmd.Name(), err: err}
	}
	return err
}

// subArgs is args without the subcommand's name (the first argument that
// is not a flag).
func subArgs(args []string) []string {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			return append(append([]string{}, args[:i]...), args[i+1:]...)
		}
	}
	return nil
}

// newRoot builds the command tree, writing to cio's streams; the
// subcommands read cio when they run.
func newRoot(cio *cmdIO) *cobra.Command {
	root := &cobra.Command{
		Use:   "durusbdb",
		Short: "a Durus storage server on Berkeley DB (or LevelDB), and the tools to operate it",
		Long: "durusbdb: a Durus storage server on Berkeley DB (or LevelDB), and the tools to operate it.\n\n" +
			"Every flag can also be set by the environment variable DURUSBDB_<FLAG> (e.g. DURUSBDB_CACHE_SIZE).\n" +
			"Exit codes: 0 ok, 1 failed, 2 bad usage, 3 check found problems.",
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if v, _ := cmd.Flags().GetBool("version"); v {
				fmt.Fprintf(cio.stdout, "durusbdb %s\n", Version)
				return nil
			}
			if len(args) == 0 {
				cmd.Help()
				return errNoCommand
			}
			return &usageError{fmt.Sprintf("unknown command %q", args[0])}
		},
	}
	root.SetIn(cio.stdin)
	root.SetOut(cio.stdout)
	root.SetErr(cio.stderr)
	root.Flags().BoolP("version", "v", false, "print the version and exit (durusbdb version says more)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return root.Help()
			}
			sub, _, err := root.Find(args)
			if err != nil || sub == root {
				return &usageError{fmt.Sprintf("unknown command %q", args[0])}
			}
			return sub.Help()
		},
	})
	for _, c := range commands() {
		root.AddCommand(c.cobra(cio))
	}
	root.AddCommand(replCobra(cio))
	return root
}

// subHelp prints the help of a subcommand: usage, summary, example,
// flags. (A function, not a cobra template: text/template would keep the
// linker from dropping unused methods.)
func subHelp(cmd *cobra.Command, _ []string) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "usage: %s\n\n%s\n", cmd.Annotations["usage"], cmd.Short)
	if cmd.Example != "" {
		fmt.Fprintf(w, "\nexample:\n  %s\n", cmd.Example)
	}
	if cmd.HasAvailableLocalFlags() {
		fmt.Fprintf(w, "\nflags:\n%s\n", cmd.LocalFlags().FlagUsages())
		fmt.Fprintln(w, "Every flag can also be set by the environment variable DURUSBDB_<FLAG> (e.g. DURUSBDB_CACHE_SIZE).")
	}
}

// cobra makes the cobra command of c.
func (c *command) cobra(cio *cmdIO) *cobra.Command {
	cc := &cobra.Command{
		Use:                   c.name,
		Short:                 c.summary,
		Example:               c.example,
		Annotations:           map[string]string{"usage": c.usage},
		Args:                  cobra.ArbitraryArgs,
		DisableFlagsInUseLine: true,
	}
	cc.SetHelpFunc(subHelp)
	cc.Flags().SortFlags = true
	run := c.setup(cc.Flags())
	cc.RunE = func(cmd *cobra.Command, _ []string) error {
		src, err := applyConfig(cmd.Flags(), cio.environ)
		if err != nil {
			return err
		}
		sub := *cio
		sub.src = src
		err = run(cmd.Context(), sub, cio.argv)
		if err == nil {
			return nil
		}
		var ue *usageError
		if errors.As(err, &ue) {
			err = &usageError{src.annotate(cmd.Flags(), ue.msg)}
		}
		return &cmdError{name: c.name, err: withHint(cmd.Flags(), err)}
	}
	return cc
}

// longFlags rewrites single-dash long flags (`-dir D`, `-create`, the
// spelling of Go's flag package that older scripts use) to `--dir D`,
// for names the subcommand defines; everything after `--` is left alone.
func longFlags(root *cobra.Command, args []string) []string {
	sub, _, err := root.Find(args)
	if err != nil || sub == root {
		return args
	}
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if sub.Flags().Lookup(name) != nil || name == "help" {
			out[i] = "-" + a
		}
	}
	return out
}

// newFlagSet makes a FlagSet outside the command tree (the server's side
// of a routed backup): errors are returned, nothing is printed.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args into fs (from newFlagSet) and fills the flags
// not given from the environment; errors are usage errors.
func parseFlags(fs *pflag.FlagSet, environ, args []string) error {
	if err := fs.Parse(args); err != nil {
		return &usageError{err.Error()}
	}
	_, err := applyConfig(fs, environ)
	return err
}
