package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Flags go anywhere on the line: after the positional argument too.
func TestFlagsAnywhere(t *testing.T) {
	file, one := chainFile(t, 2), chainRecord(1, 2)
	dir := filepath.Join(t.TempDir(), "db")
	os.Mkdir(dir, 0o755)
	if code, _, stderr := runCLI(t, nil, "migrate", file, "--dir", dir, "--create"); code != exitOK {
		t.Fatalf("migrate FILE --dir D --create: exit %d: %s", code, stderr)
	}
	code, out, stderr := runCLI(t, nil, "dump", "1", "--raw", "--dir", dir)
	if code != exitOK || out != string(one) {
		t.Fatalf("dump 1 --raw --dir D: exit %d, %q, %s", code, out, stderr)
	}
}

// Go flag-package spellings (`-dir D`, `-create`, `-dir=D`) keep working
// for the long flags a command has.
func TestSingleDashLongFlags(t *testing.T) {
	file, one := chainFile(t, 2), chainRecord(1, 2)
	dir := filepath.Join(t.TempDir(), "db")
	os.Mkdir(dir, 0o755)
	if code, _, stderr := runCLI(t, nil, "migrate", "-dir", dir, "-create", file); code != exitOK {
		t.Fatalf("migrate -dir D -create FILE: exit %d: %s", code, stderr)
	}
	code, out, stderr := runCLI(t, nil, "dump", "-dir="+dir, "-raw", "1")
	if code != exitOK || out != string(one) {
		t.Fatalf("dump -dir=D -raw 1: exit %d, %q, %s", code, out, stderr)
	}
	if code, _, stderr := runCLI(t, nil, "stats", "-dir", dir, "-nosuch"); code != exitUsage || !strings.Contains(stderr, "nosuch") {
		t.Fatalf("an unknown single-dash flag: exit %d, %s", code, stderr)
	}
}

// help CMD, --version and completion scripts.
func TestHelpVersionCompletion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "help", "migrate")
	if code != exitOK || !strings.Contains(out, "usage: durusbdb migrate") || !strings.Contains(out, "--ignore-incomplete-tail") {
		t.Errorf("help migrate: exit %d\n%s", code, out)
	}
	if code, _, stderr := runCLI(t, nil, "help", "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("help of an unknown command: exit %d, %s", code, stderr)
	}
	if code, out, _ := runCLI(t, nil, "--version"); code != exitOK || out != "durusbdb "+Version+"\n" {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	for shell, want := range map[string]string{"bash": "__start_durusbdb", "zsh": "#compdef durusbdb", "fish": "complete -c durusbdb"} {
		if code, out, _ := runCLI(t, nil, "completion", shell); code != exitOK || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, lacks %q", shell, code, want)
		}
	}
	if code, out, _ := runCLI(t, nil); code != exitUsage || !strings.Contains(out, "serve") {
		t.Errorf("no command: exit %d\n%s", code, out)
	}
}
