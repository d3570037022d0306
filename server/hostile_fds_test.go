package server

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
)

// fdLimitForFlood is the RLIMIT_NOFILE of the flooded server: low enough
// that a few hundred connections would use it up.
const fdLimitForFlood = 200

// TestDescriptorFloodChild: a server whose descriptor limit is low (200)
// meets 400 connections held open. It serves only as many as leave its
// storage the descriptors it needs (and says so in its log at start);
// the rest are refused at once. Under the flood the control socket still
// answers (a checkpoint and stats through it), an earlier client still
// commits and loads, and the server keeps running. Before, the
// descriptors ran out: the control socket's accept loop gave up for good
// on EMFILE, and Berkeley DB, unable to open a log file for a checkpoint,
// panicked its environment, which stopped the server.
func TestDescriptorFloodChild(t *testing.T) {
	bin := buildCLI(t)
	for _, be := range backendsUnderTest() {
		t.Run(be, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(t.TempDir(), "s")
			p := &serverProc{sock: sock, Process: proc.StartT(t, proc.Options{},
				"sh", "-c", "ulimit -n "+strconv.Itoa(fdLimitForFlood)+` && exec "$0" "$@"`,
				bin, "serve", "--dir", dir, "--address", sock, "--create", "--backend", be, "--min-free-space", "0")}
			if err := p.WaitUntil(20*time.Second, `log "msg=serving"`, func() bool { return strings.Contains(p.Log(), "msg=serving") }); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.Log(), "connections limited by the file-descriptor limit") {
				t.Errorf("the log does not say that connections are limited by the descriptor limit:\n%s", p.LogTail(20))
			}
			c := dialUnix(t, sock)
			oid := c.newOIDs(2)[1]
			if _, st := c.commit(rec(0, "root", oid), rec(oid, "before the flood")); st != 'O' {
				t.Fatalf("commit before the flood: %q", st)
			}

			var flood []net.Conn
			defer func() {
				for _, nc := range flood {
					nc.Close()
				}
			}()
			for range 2 * fdLimitForFlood {
				nc, err := net.DialTimeout("unix", sock, 5*time.Second)
				if err != nil {
					t.Fatalf("flood connection %d: %v", len(flood), err)
				}
				flood = append(flood, nc)
			}
			// Let the server accept (or refuse) all of them.
			time.Sleep(500 * time.Millisecond)

			for _, args := range [][]string{{"checkpoint", "--dir", dir}, {"stats", "--dir", dir}} {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
				cancel()
				if err != nil {
					t.Fatalf("durusbdb %s under a flood of connections: %v\n%s", args[0], err, out)
				}
			}
			if _, st := c.commit(rec(oid, "during the flood")); st != 'O' {
				t.Fatalf("commit during the flood: %q", st)
			}
			if st, data := c.load(oid); st != 'O' || !strings.Contains(string(data), "during the flood") {
				t.Fatalf("load during the flood: %q %q", st, data)
			}
			select {
			case <-p.Done():
				t.Fatalf("the server stopped under the flood:\n%s", p.LogTail(30))
			default:
			}
			if l := p.Log(); strings.Contains(l, "storage failed") || strings.Contains(l, "too many open files") {
				t.Errorf("the server ran out of descriptors:\n%s", p.LogTail(30))
			}
		})
	}
}
