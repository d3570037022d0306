package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func runCLI(t *testing.T, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), cmdIO{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, environ: environ}, args)
	return code, out.String(), errb.String()
}

func TestBadInvocations(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, []byte("x"), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"unknown flag", []string{"check", "--bogus"}, exitUsage, "unknown flag: --bogus"},
		{"missing dir flag", []string{"check"}, exitUsage, "--dir is required"},
		{"dir missing", []string{"check", "--dir", "/nonexistent/durusbdb"}, exitFailed, "/nonexistent/durusbdb"},
		{"dir is a file", []string{"stats", "--dir", file}, exitFailed, "is not a directory"},
		{"bad cache size", []string{"stats", "--dir", t.TempDir(), "--cache-size", "lots"}, exitUsage, "bad size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, c.args...)
			if code != c.code || !strings.Contains(stderr, c.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, stderr, c.msg)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Count(stderr, "\n") > 2 {
				t.Fatalf("want one clear line, got %q", stderr)
			}
		})
	}
}

func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		code, out, _ := runCLI(t, nil, c.name, "--help")
		if code != exitOK || !strings.Contains(out, "usage: durusbdb "+c.name) || !strings.Contains(out, "example:") {
			t.Errorf("%s --help: exit %d, output %q", c.name, code, out)
		}
	}
}

func TestConfigSources(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "durusbdb.conf")
	os.WriteFile(cfg, []byte("# comment\n--port = 3000\nhost = \"10.0.0.1\"\ndir = /from/file\n"), 0o644)
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	port := fs.Int("port", 2972, "")
	host := fs.String("host", "127.0.0.1", "")
	d := fs.String("dir", "", "")
	fs.String("config", "", "")
	fs.Bool("readonly", false, "")
	if err := fs.Parse([]string{"--config", cfg, "--dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	src, err := applyConfig(fs, []string{"DURUSBDB_HOST=192.0.2.1", "DURUSBDB_READONLY=true", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	if *port != 3000 || src["port"].kind != srcFile {
		t.Errorf("port %d from %s", *port, src["port"])
	}
	if *host != "192.0.2.1" || src["host"].kind != srcEnv {
		t.Errorf("host %s from %s: env beats file", *host, src["host"])
	}
	if *d != "/from/flag" || src["dir"].kind != srcFlag {
		t.Errorf("dir %s from %s: flag beats file", *d, src["dir"])
	}
	if src["readonly"].kind != srcEnv {
		t.Errorf("readonly from %s", src["readonly"])
	}
	var out bytes.Buffer
	printConfig(&out, fs, src)
	if !strings.Contains(out.String(), `port = "3000"  # config file`) {
		t.Errorf("print-config:\n%s", out.String())
	}

	os.WriteFile(cfg, []byte("nosuch = 1\n"), 0o644)
	if _, err := applyConfig(fs, nil); err == nil || !strings.Contains(err.Error(), `line 1: unknown setting "nosuch"`) {
		t.Errorf("unknown setting: %v", err)
	}
	fs.Set("config", filepath.Join(dir, "missing.conf"))
	if _, err := applyConfig(fs, nil); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("unreadable config: %v", err)
	}
	fresh := pflag.NewFlagSet("t2", pflag.ContinueOnError)
	fresh.Int("port", 2972, "")
	if _, err := applyConfig(fresh, []string{"DURUSBDB_PORT=abc"}); err == nil || !strings.Contains(err.Error(), "DURUSBDB_PORT") {
		t.Errorf("bad env value: %v", err)
	}
}

// TestVersionNamesLibraries: `durusbdb version` names the storage
// libraries it links, with their versions (what a bug report needs).
func TestVersionNamesLibraries(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != exitOK || !strings.Contains(out, "\nleveldb: 1.") {
		t.Fatalf("version: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "backends: bdb") != strings.Contains(out, "\nlibdb: Berkeley DB 5.3") {
		t.Fatalf("version: the libdb line does not match the compiled backends\n%s", out)
	}
}
