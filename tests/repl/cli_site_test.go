//go:build bdb

package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/freeport"
	"github.com/durusbdb/durusbdb/internal/proc"
	"github.com/durusbdb/durusbdb/internal/testwait"
)

// cliSite is a site run as a real `durusbdb serve` process (the binary
// built by cliBinary), for the tests of the operator's commands (`durusbdb
// repl ...`), which the server runs through its control socket, and of
// restarts of a site killed mid sync-up. Its role is read from /role on
// its --metrics listener, which answers while the site is still syncing.
type cliSite struct {
	t       testing.TB
	bin     string
	name    string
	dir     string
	durus   string // Durus address
	repl    string // replication address (--repl-listen)
	metrics string // --metrics address
	peers   []string
	p       *proc.Process
}

// cliBinary builds cmd/durusbdb with -tags bdb for the test.
func cliBinary(t testing.TB) string {
	t.Helper()
	var b proc.Builder
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := b.Build(ctx, "github.com/durusbdb/durusbdb/cmd/durusbdb", "bdb")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// newCLISites makes n sites' configuration (directories under one
// temporary directory, free addresses); none is started.
func newCLISites(t testing.TB, bin string, n int) []*cliSite {
	t.Helper()
	base := t.TempDir()
	sites := make([]*cliSite, n)
	addrs := freeport.T(t, 3*n) // durus, repl and metrics of each site
	for i := range sites {
		dir := filepath.Join(base, fmt.Sprintf("site%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		sites[i] = &cliSite{t: t, bin: bin, name: fmt.Sprintf("site%d", i), dir: dir,
			durus: addrs[3*i], repl: addrs[3*i+1], metrics: addrs[3*i+2]}
	}
	for _, s := range sites {
		for _, o := range sites {
			if o != s {
				s.peers = append(s.peers, o.repl)
			}
		}
	}
	return sites
}

// start runs `durusbdb serve` on the site's directory (creating the
// group with init).
func (s *cliSite) start(init bool) {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.durus)
	args := []string{s.bin, "serve", "--dir", s.dir, "--create", "--host", "127.0.0.1", "--port", port,
		"--metrics", s.metrics, "--repl-listen", s.repl, "--repl-ack-timeout", "500ms", "--repl-heartbeat", "500ms"}
	for _, p := range s.peers {
		args = append(args, "--repl-peer", p)
	}
	if init {
		args = append(args, "--repl-init")
	}
	s.p = proc.StartT(s.t, proc.Options{LogPath: s.dir + ".log"}, args...)
}

// kill sends SIGKILL (and SIGCONT, for a stopped site) and waits for the
// exit.
func (s *cliSite) kill() {
	s.t.Helper()
	if err := s.p.Kill(30 * time.Second); err != nil {
		s.t.Fatalf("%s: %v", s.name, err)
	}
}

// logSize is the size of the site's log file (all its runs, appended).
func (s *cliSite) logSize() int64 {
	fi, err := os.Stat(s.dir + ".log")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is the site's log from offset off.
func (s *cliSite) logSince(off int64) string {
	b, _ := os.ReadFile(s.dir + ".log")
	if int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// signal sends sig to the site's process (a SIGSTOP returns once it is
// stopped); only a failed stop is an error of the test.
func (s *cliSite) signal(sig syscall.Signal) {
	if err := s.p.Signal(sig); err != nil && sig == syscall.SIGSTOP {
		s.t.Errorf("%s: %v", s.name, err)
	}
}

// role is the site's role from /role ("" if it does not answer).
func (s *cliSite) role() string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.metrics + "/role")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var r struct{ Role string }
	if json.NewDecoder(resp.Body).Decode(&r) != nil {
		return ""
	}
	return r.Role
}

// waitRole waits until the site reports role.
func (s *cliSite) waitRole(d time.Duration, role string) {
	s.t.Helper()
	testwait.Within(s.t, d, s.name+" "+role, func() bool {
		if s.p.Exited() {
			s.t.Fatalf("%s exited while waiting for %s: %v\n%s", s.name, role, s.p.Err(), s.p.LogTail(30))
		}
		return s.role() == role
	})
}

// cli runs `durusbdb args...` and returns its exit code and output.
func (s *cliSite) cli(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		s.t.Fatalf("run %s: %v", s.bin, err)
	}
	return 0, out.String(), errb.String()
}

// cliGroup is `durusbdb repl status --json`'s output.
type cliGroup struct {
	Role   string `json:"role"`
	NSites int    `json:"nsites"`
	Master string `json:"master"`
	Sites  []struct {
		Addr      string `json:"addr"`
		Local     bool   `json:"local"`
		Master    bool   `json:"master"`
		Connected bool   `json:"connected"`
	} `json:"sites"`
}

// names reports whether the group lists addr.
func (g cliGroup) names(addr string) bool {
	for _, s := range g.Sites {
		if s.Addr == addr {
			return true
		}
	}
	return false
}

// group runs `durusbdb repl status --json` on the site.
func (s *cliSite) group() (cliGroup, error) {
	code, out, stderr := s.cli("repl", "status", "--json", "--dir", s.dir)
	if code != 0 {
		return cliGroup{}, fmt.Errorf("repl status --dir %s: exit %d: %s", s.dir, code, stderr)
	}
	var g cliGroup
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		return cliGroup{}, fmt.Errorf("repl status --dir %s: %w\n%s", s.dir, err, out)
	}
	return g, nil
}
