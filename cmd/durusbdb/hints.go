package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/durusbdb/durusbdb/bdb/logscan"
	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
	"github.com/spf13/pflag"
)

// hint is what resolves an error: the flag of the command, or another
// command, that an operator reaches for next.
type hint struct {
	err  error  // the sentinel the error wraps
	flag string // the hint applies when the command has this flag ("" always)
	text string // appended to the message
}

// hints, first match wins.
var hints = []hint{
	{engine.ErrNotEmpty, "force", "--force replaces the database's contents"},
	{kv.ErrNotDB, "create", "--create makes a new database in an empty directory"},
	{filestorage.ErrExists, "force", "--force replaces it"},
	{filestorage.ErrLocked, "force", "--force reads the file as a snapshot while its writer runs"},
	{filestorage.ErrDamaged, "ignore-incomplete-tail", "if only the final transaction is incomplete (a writer died mid-commit), --ignore-incomplete-tail imports everything before it"},
	{engine.ErrImportIncomplete, "", "an import did not finish: run `durusbdb migrate --force` again"},
	// a damaged log before other damage: recovery would cut it.
	{logscan.ErrDamaged, "", "restore a backup (`durusbdb restore`), or see `durusbdb recover --help` for --discard-damaged-log"},
	// damage first: a Berkeley DB page checksum error also needs recovery,
	// but recovery does not mend the page.
	{kv.ErrCorrupt, "", "run `durusbdb check --dir DIR` for the damage, then restore a backup or `durusbdb recover --dir DIR`"},
	{kv.ErrNeedRecover, "", "stop every process using the directory and run `durusbdb recover --dir DIR` (or start the server, which recovers)"},
}

// withHint appends to err the flag or command that resolves it, unless
// its message already names it.
func withHint(fs *pflag.FlagSet, err error) error {
	for _, h := range hints {
		if !errors.Is(err, h.err) || h.flag != "" && fs.Lookup(h.flag) == nil {
			continue
		}
		name := h.text
		if h.flag != "" {
			name = "--" + h.flag
		} else if i := strings.Index(h.text, "`durusbdb "); i >= 0 {
			name = h.text[i:]
			name = name[:strings.IndexByte(name[1:], '`')+2]
		}
		if strings.Contains(err.Error(), name) {
			return err
		}
		return fmt.Errorf("%w (%s)", err, h.text)
	}
	return err
}
