// Package testpy finds the Python interpreter that interop tests drive:
// one that can import the modules a test needs (durus, bsddb3). Tests fail
// rather than skip when none is found: CI installs Durus 4.3 and bsddb3
// (scripts/install-deps.sh), so a missing interpreter must not pass silently.
package testpy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	found = map[string]string{} // modules → interpreter, per test binary
)

// candidates lists, in order: $DURUSBDB_PYTHON, the repository's .venv
// (scripts/install-deps.sh's default), $VENV, python3.
func candidates() []string {
	var c []string
	if p := os.Getenv("DURUSBDB_PYTHON"); p != "" {
		c = append(c, p)
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				c = append(c, filepath.Join(d, ".venv", "bin", "python"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if v := os.Getenv("VENV"); v != "" {
		c = append(c, filepath.Join(v, "bin", "python"))
	}
	return append(c, "python3")
}

// Python returns an interpreter that imports every module named, or fails t.
func Python(t testing.TB, modules ...string) string {
	t.Helper()
	key := strings.Join(modules, ",")
	mu.Lock()
	defer mu.Unlock()
	if p, ok := found[key]; ok {
		return p
	}
	imp := "import " + strings.Join(append([]string{"sys"}, modules...), ", ")
	var tried []string
	for _, c := range candidates() {
		out, err := exec.Command(c, "-c", imp).CombinedOutput()
		if err == nil {
			found[key] = c
			return c
		}
		tried = append(tried, fmt.Sprintf("%s: %v %s", c, err, strings.TrimSpace(string(out))))
	}
	t.Fatalf("no Python that can %q (set DURUSBDB_PYTHON; scripts/install-deps.sh makes one); tried:\n%s", imp, strings.Join(tried, "\n"))
	return ""
}
