package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
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

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "DURUSBDB_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyConfig fills the flags not given on the command line from the
// environment and then from the config file named by the "config" flag
// (if the FlagSet has one and it is set, by flag or environment). It
// returns each flag's source.
func applyConfig(fs *flag.FlagSet, environ []string) (map[string]string, error) {
	src := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { src[f.Name] = srcDefault })
	fs.Visit(func(f *flag.Flag) { src[f.Name] = srcFlag })
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "DURUSBDB_") {
			env[k] = v
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || src[f.Name] != srcDefault {
			return
		}
		if v, ok := env[envName(f.Name)]; ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = &usageError{fmt.Sprintf("environment %s=%q: %v", envName(f.Name), v, e)}
				return
			}
			src[f.Name] = srcEnv
		}
	})
	if err != nil {
		return nil, err
	}
	cf := fs.Lookup("config")
	if cf == nil || cf.Value.String() == "" {
		return src, nil
	}
	path := cf.Value.String()
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer fh.Close()
	lines, err := readConfig(fh, path)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		f := fs.Lookup(l.name)
		if f == nil || l.name == "config" {
			return nil, &usageError{fmt.Sprintf("%s line %d: unknown setting %q", path, l.no, l.name)}
		}
		if src[l.name] != srcDefault {
			continue
		}
		if err := fs.Set(l.name, l.value); err != nil {
			return nil, &usageError{fmt.Sprintf("%s line %d: %s = %q: %v", path, l.no, l.name, l.value, err)}
		}
		src[l.name] = srcFile
	}
	return src, nil
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
			return nil, &usageError{fmt.Sprintf("%s line %d: want name = value, got %q", path, no, line)}
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
func printConfig(w io.Writer, fs *flag.FlagSet, src map[string]string) {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	fmt.Fprintf(w, "# effective configuration: name = value  # source (flag > env DURUSBDB_* > config file > default)\n")
	for _, n := range names {
		if n == "print-config" {
			continue
		}
		fmt.Fprintf(w, "%s = %q  # %s\n", n, fs.Lookup(n).Value.String(), src[n])
	}
}
