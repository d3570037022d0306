package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/spf13/pflag"
)

// Version is durusbdb's release, recorded in meta `writer` of databases it opens.
const Version = "0.1.0"

func versionCommand() *command {
	c := &command{
		name:    "version",
		summary: "print the version, the compiled-in backends and the libdb and LevelDB library versions",
		usage:   "durusbdb version",
		example: "durusbdb version",
	}
	c.setup = func(fs *pflag.FlagSet) runFunc {
		return func(ctx context.Context, cio cmdIO, args []string) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " " + s.Value
					}
				}
			}
			fmt.Fprintf(cio.stdout, "durusbdb %s%s (%s %s/%s)\nbackends: %s (default for new databases: %s)\n",
				Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH,
				strings.Join(backend.Compiled(), ", "), backend.Default())
			for _, lv := range backend.LibraryVersions() {
				fmt.Fprintf(cio.stdout, "%s: %s\n", lv[0], lv[1])
			}
			return nil
		}
	}
	return c
}
