package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/control"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// `durusbdb repl status|remove-site`: the replication group of a live
// site. The server holds the Berkeley DB environment (and only its
// Replication Manager knows the group), so these commands always run in
// the server, through its control socket (see live.go): the client
// checks --dir and sends its command line; the server's controlHandler
// runs the same command with the server's database in the context.

// replSite is one member of the group, as printed by repl status.
type replSite struct {
	Addr      string `json:"addr"`
	Local     bool   `json:"local,omitempty"`
	Master    bool   `json:"master,omitempty"`
	Connected bool   `json:"connected"`
}

// replGroup is the group as one site's libdb sees it.
type replGroup struct {
	Dir    string     `json:"dir"`
	Role   string     `json:"role"`   // this site's role (kv.Role*)
	NSites int        `json:"nsites"` // libdb's group size (elections, quorum)
	Master string     `json:"master"` // master's replication address, "" if none
	Sites  []replSite `json:"sites"`  // this site first
}

// replCobra is the `repl` parent command and its subcommands.
func replCobra(cio *cmdIO) *cobra.Command {
	parent := &cobra.Command{
		Use:   "repl",
		Short: "the replication group of a live site: status, remove-site",
		Long: "durusbdb repl: the replication group of a live site, run by its server through the control socket.\n\n" +
			"  durusbdb repl status --dir DIR            the group as this site's libdb sees it\n" +
			"  durusbdb repl remove-site HOST:PORT --dir DIR   remove a dead site from the group for good",
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.Help()
			if len(args) > 0 {
				return &cmdError{name: "repl", err: &usageError{fmt.Sprintf("unknown repl command %q (status, remove-site)", args[0])}}
			}
			return &cmdError{name: "repl", err: &usageError{"want a repl command: status or remove-site"}}
		},
	}
	for _, c := range []*command{replStatusCommand(), replRemoveSiteCommand()} {
		cc := c.cobra(cio)
		cc.Use = strings.TrimPrefix(c.name, "repl ")
		parent.AddCommand(cc)
	}
	return parent
}

func replStatusCommand() *command {
	c := &command{
		name:    "repl status",
		summary: "print the replication group as this site's Berkeley DB sees it: its role, the group size, the master, each site and whether it is connected",
		usage:   "durusbdb repl status --dir DIR [--json]",
		example: "durusbdb repl status --dir /var/lib/durusbdb",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		dir := fs.String("dir", "", "database directory of a running replication site (required)")
		asJSON := fs.Bool("json", false, "print JSON")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if err := noArgs(fs); err != nil {
				return err
			}
			lv := liveFrom(ctx)
			if lv == nil {
				return replRoute(ctx, cio, *dir, args)
			}
			g, err := replGroupOf(lv.db, *dir)
			if err != nil {
				return err
			}
			if *asJSON {
				enc := json.NewEncoder(cio.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(g)
			}
			printGroup(cio.stdout, g)
			return nil
		}
	}
	return c
}

func replRemoveSiteCommand() *command {
	c := &command{
		name:    "repl remove-site",
		summary: "remove a dead site from the replication group for good, so that it no longer counts in the group size and the quorum",
		usage:   "durusbdb repl remove-site HOST:PORT --dir DIR [--force]",
		example: "durusbdb repl remove-site 10.0.0.3:2973 --dir /var/lib/durusbdb",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		dir := fs.String("dir", "", "database directory of a running replication site, any live member (required)")
		force := fs.Bool("force", false, "remove the site even if this site is connected to it (a hung site; a live one is refused)")
		return func(ctx context.Context, cio cmdIO, args []string) error {
			if fs.NArg() != 1 {
				return &usageError{"want exactly one argument: HOST:PORT, the replication address (--repl-listen) of the dead site"}
			}
			addr := fs.Arg(0)
			lv := liveFrom(ctx)
			if lv == nil {
				return replRoute(ctx, cio, *dir, args)
			}
			g, settled, err := replRemove(ctx, lv.db, *dir, addr, *force)
			if err != nil {
				return err
			}
			if !settled {
				fmt.Fprintf(cio.stdout, "removed %s from the replication group; after %s this site still sees %d sites (%s): see durusbdb repl status\n", addr, removeSettle, g.NSites, groupAddrs(g))
				return nil
			}
			fmt.Fprintf(cio.stdout, "removed %s from the replication group: %d sites now (%s)\n", addr, g.NSites, groupAddrs(g))
			return nil
		}
	}
	return c
}

// replRoute sends a repl command to the server of dir. A directory that is
// not a Berkeley DB database, or that no server holds, is refused with an
// error naming --dir.
func replRoute(ctx context.Context, cio cmdIO, dir string, args []string) error {
	if dir == "" {
		return &usageError{"--dir is required: the database directory of a running replication site"}
	}
	kind, err := backend.Detect(dir)
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	if kind == backend.LevelDB {
		return fmt.Errorf("--dir %s is a %s database: replication needs a Berkeley DB directory served with --repl-listen", dir, kind)
	}
	// An empty directory may be a joining site's, whose server answers on
	// its control socket once the database is open: the socket says so.
	ex, err := control.Run(ctx, dir, control.Request{Command: "repl", Args: args, Env: durusEnv(cio.environ)}, cio.stdout, cio.stderr)
	if errors.Is(err, control.ErrNoServer) {
		return fmt.Errorf("--dir %s: no server answers on its control socket (none runs, or it is still opening the database, as a joining site does until its sync-up is done): repl commands run in the live server of a replication site (%w)", dir, err)
	}
	if err != nil {
		return fmt.Errorf("--dir %s: the server's control socket: %w", dir, err)
	}
	return exitToError(ex)
}

// removeSettle bounds the wait for this site's view of the group to drop
// a removed site (on a replica, the master's change is replicated).
const removeSettle = 10 * time.Second

// dropped reports whether g shows addr removed: not listed, and libdb's
// group size counting exactly the sites listed. libdb updates the two
// apart when it applies a membership change, so a view read in between
// lists 2 sites and still counts 3.
func dropped(g replGroup, addr string) bool {
	for _, s := range g.Sites {
		if s.Addr == addr {
			return false
		}
	}
	return g.NSites == len(g.Sites)
}

// printGroup writes g as a table.
func printGroup(w io.Writer, g replGroup) {
	master := g.Master
	if master == "" {
		master = "none known"
	}
	fmt.Fprintf(w, "replication group of %s: this site is %s; %d sites (libdb's group size: elections and quorum); master %s\n", g.Dir, g.Role, g.NSites, master)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range g.Sites {
		var what []string
		if s.Local {
			what = append(what, "this site")
		} else if s.Connected {
			what = append(what, "connected")
		} else {
			what = append(what, "disconnected")
		}
		if s.Master {
			what = append(what, "master")
		}
		fmt.Fprintf(tw, "  %s\t%s\n", s.Addr, strings.Join(what, ", "))
	}
	tw.Flush()
}

// groupAddrs lists g's members, comma-separated.
func groupAddrs(g replGroup) string {
	a := make([]string, len(g.Sites))
	for i, s := range g.Sites {
		a[i] = s.Addr
	}
	return strings.Join(a, ", ")
}

// notReplicated is the error for a server database that is not a
// replication site.
func notReplicated(db *engine.DB, dir string) error {
	return fmt.Errorf("--dir %s: its server does not replicate it (%s backend, role %s): serve it with --repl-listen", dir, db.Backend(), db.Role().Role)
}

// replRecoverHint adds, to a failed standalone recovery of a replication
// site's directory, that a site killed during a sync-up is put right by
// rejoining the group.
func replRecoverHint(dir string, err error) error {
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(filepath.Join(dir, "__db.rep.system")); serr != nil {
		return err
	}
	return fmt.Errorf("%w (%s is a replication site: if it was killed during a sync-up with its master, rejoin the group instead, which re-initializes it: durusbdb serve with its --repl-listen and --repl-peer flags)", err, dir)
}
