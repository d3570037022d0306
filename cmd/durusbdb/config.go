package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Configuration sources, strongest first: a command-line flag, an
// environment variable DURUSBDB_<FLAG> (upper case, '-' → '_'), a line
// of the --config file, the flag's default.
const (
	srcFlag    = "flag"
	srcEnv     = "env"
	srcFile    = "config file"
	srcDefault = "default"
)

// origin is where one flag's value came from: kind is a src* constant,
// where says it for a message (`DURUSBDB_CACHE_SIZE=abc (environment)`,
// `config file F line N`; empty for a flag or a default).
type origin struct{ kind, where string }

// sources maps each flag name to its origin.
type sources map[string]origin

// notFlags are the flags of the command tree that are not settings.
var notFlags = map[string]bool{"help": true, "config": true, "print-config": true, "version": true}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "DURUSBDB_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyConfig fills the flags not given on the command line from the
// environment and then from the config file named by the "config" flag
// (if the FlagSet has one and it is set, by flag or environment). Only
// the flags fs has are looked up: a DURUSBDB_ variable for a flag the
// command lacks is ignored. A bad value is a usage error naming where it
// came from. It returns each flag's origin.
func applyConfig(fs *pflag.FlagSet, environ []string) (sources, error) {
	src := sources{}
	fs.VisitAll(func(f *pflag.Flag) {
		src[f.Name] = origin{kind: srcDefault}
		if f.Changed {
			src[f.Name] = origin{kind: srcFlag}
		}
	})
	if err := applyEnv(fs, environ, src); err != nil {
		return nil, err
	}
	cf := fs.Lookup("config")
	if cf == nil || cf.Value.String() == "" {
		return src, nil
	}
	path := cf.Value.String()
	fh, err := os.Open(path)
	if err != nil {
		return nil, &usageError{fmt.Sprintf("--config: %v", err)}
	}
	defer fh.Close()
	lines, err := readConfig(fh, path)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		f := fs.Lookup(l.name)
		if f == nil || notFlags[l.name] {
			return nil, &usageError{fmt.Sprintf("config file %s line %d: unknown setting %q", path, l.no, l.name)}
		}
		if src[l.name].kind != srcDefault {
			continue
		}
		if err := fs.Set(l.name, l.value); err != nil {
			return nil, &usageError{fmt.Sprintf("config file %s line %d: %s = %q: %v", path, l.no, l.name, l.value, err)}
		}
		src[l.name] = origin{srcFile, fmt.Sprintf("config file %s line %d", path, l.no)}
	}
	return src, nil
}

// applyEnv sets the flags still at their default from DURUSBDB_*
// variables of environ.
func applyEnv(fs *pflag.FlagSet, environ []string, src sources) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "DURUSBDB_") {
			env[k] = v
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || src[f.Name].kind != srcDefault || notFlags[f.Name] && f.Name != "config" {
			return
		}
		v, ok := env[envName(f.Name)]
		if !ok {
			return
		}
		where := fmt.Sprintf("%s=%s (environment)", envName(f.Name), v)
		if e := fs.Set(f.Name, v); e != nil {
			err = &usageError{fmt.Sprintf("%s: %v", where, e)}
			return
		}
		src[f.Name] = origin{srcEnv, where}
	})
	return err
}

// annotate adds to msg, a usage error that names a flag (`--cache-size:
// bad size`), where that flag's value came from when it was not the
// command line.
func (src sources) annotate(fs *pflag.FlagSet, msg string) string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, n := range names {
		o := src[n]
		if o.where == "" || !mentions(msg, "--"+n) {
			continue
		}
		return fmt.Sprintf("%s (the value of --%s comes from %s)", msg, n, o.where)
	}
	return msg
}

// mentions reports whether msg names the flag (not a longer flag it is
// a prefix of).
func mentions(msg, flag string) bool {
	for i := 0; ; {
		j := strings.Index(msg[i:], flag)
		if j < 0 {
			return false
		}
		end := i + j + len(flag)
		if end == len(msg) || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyz-", rune(msg[end])) {
			return true
		}
		i = end
	}
}

type configLine struct {
	no          int
	name, value string
}

// readConfig parses "name = value" lines; '#' starts a comment; names may
// carry leading dashes; values may be double-quoted.
func readConfig(r io.Reader, path string) ([]configLine, error) {
	var out []configLine
	sc := bufio.NewScanner(r)
	for no := 1; sc.Scan(); no++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &usageError{fmt.Sprintf("config file %s line %d: want name = value, got %q", path, no, line)}
		}
		k = strings.TrimLeft(strings.TrimSpace(k), "-")
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		out = append(out, configLine{no, k, v})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return out, nil
}

// printConfig writes every flag's effective value and its source.
func printConfig(w io.Writer, fs *pflag.FlagSet, src sources) {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	fmt.Fprintf(w, "# effective configuration: name = value  # source (flag > env DURUSBDB_* > config file > default)\n")
	for _, n := range names {
		if n == "print-config" || n == "help" {
			continue
		}
		where := src[n].kind
		if src[n].where != "" {
			where = src[n].where
		}
		fmt.Fprintf(w, "%s = %q  # %s\n", n, fs.Lookup(n).Value.String(), where)
	}
}
