package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/proc"
)

// jsonLogLines parses a JSON log; every non-empty line must be an object.
// A last line without its newline (still being written) is left out.
func jsonLogLines(t *testing.T, text string) []map[string]any {
	t.Helper()
	text = text[:strings.LastIndexByte(text, '\n')+1]
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// findLog returns the first line whose msg is msg (and, if remote is not
// empty, whose remote is remote).
func findLog(lines []map[string]any, msg, remote string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg && (remote == "" || l["remote"] == remote) {
			return l
		}
	}
	return nil
}

// busyMetricsAddress: a busy metrics address fails serve at once, before
// the database in dir is opened.
func busyMetricsAddress(t *testing.T, bin, dir string) {
	t.Helper()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	out, err := exec.Command(bin, "serve", "--dir", dir, "--create", "--host", "127.0.0.1", "--port", "0",
		"--metrics", busy.Addr().String()).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "metrics: listen on "+busy.Addr().String()) {
		t.Errorf("busy metrics address: %v, output %q", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("database created although the metrics address was busy")
	}
}

// `serve --metrics 127.0.0.1:0 --log-format json`: the metrics endpoint
// serves the server's and the engine's figures, the log is JSON with one
// line per connection open and close naming the client, and the endpoint
// stops with the server.
func TestCLIMetrics(t *testing.T) {
	bin := buildCLI(t)
	dir := t.TempDir()

	busyMetricsAddress(t, bin, dir)

	p := proc.StartT(t, proc.Options{}, bin, "serve", "--dir", dir, "--create", "--host", "127.0.0.1", "--port", "0",
		"--metrics", "127.0.0.1:0", "--log-format", "json")
	var addr, maddr string
	waitFor(t, 20*time.Second, "server start", func() bool {
		lines := jsonLogLines(t, p.Log())
		if l := findLog(lines, "metrics: serving", ""); l != nil {
			maddr, _ = l["address"].(string)
		}
		if l := findLog(lines, "serving", ""); l != nil {
			addr, _ = l["address"].(string)
		}
		return addr != "" && maddr != ""
	})

	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := &client{t: t, nc: nc}
	remote := nc.LocalAddr().String()
	o := c.newOIDs(2)
	if _, st := c.commit(rec(o[0], "root", o[1]), rec(o[1], "x")); st != 'O' {
		t.Fatal(st)
	}
	if st, _ := c.load(o[1]); st != 'O' {
		t.Fatal(st)
	}

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		"\ndurusbdb_commits_total{status=\"O\"} 1\n",
		"\ndurusbdb_loads_total{status=\"O\"} 1\n",
		"\ndurusbdb_connections 1\n",
		"\ndurusbdb_objects 2\n",
		"\ndurusbdb_engine_commits_total 1\n",
		"durusbdb_commit_duration_seconds_count{stage=\"total\"} 1\n",
		"\ndurusbdb_gc_queue_length ",
		"\ndurusbdb_checkpoints_total ",
		"\ndurusbdb_info{",
		"\ngo_goroutines ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("scrape lacks %q", strings.TrimSpace(want))
		}
	}
	if bdbTag && !strings.Contains(text, "\ndurusbdb_bdb_log_files ") {
		t.Errorf("scrape of a Berkeley DB database lacks durusbdb_bdb_log_files")
	}

	c.send([]byte{'Q'})
	if err := p.Wait(15 * time.Second); err != nil {
		t.Fatalf("exit after Q: %v\n%s", err, p.Log())
	}
	if nc, err := net.DialTimeout("tcp", maddr, time.Second); err == nil {
		nc.Close()
		t.Errorf("metrics endpoint still listening after exit")
	}
	lines := jsonLogLines(t, p.Log())
	for _, msg := range []string{"connection opened", "connection closed"} {
		if findLog(lines, msg, remote) == nil {
			t.Errorf("no JSON %q line with remote %s:\n%s", msg, remote, p.Log())
		}
	}
}
