package control

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestRunFileWriteNoSpace: a file the server sends that the client cannot
// write because its file system is full (writes go to /dev/full, which
// fails every write with ENOSPC) fails Run with a *FileError that names
// the file and the lack of space, not the control socket; nothing is
// left beside the file.
func TestRunFileWriteNoSpace(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("no /dev/full (the test writes through it to meet ENOSPC): %v", err)
	}
	defer full.Close()
	c := client{partWriter: func(*os.File) io.Writer { return full }}

	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(src, bytes.Repeat([]byte("x"), 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	s, err := Listen(dir, echoHandler(&calls, src), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := filepath.Join(t.TempDir(), "out.durus")
	_, err = c.run(context.Background(), dir, Request{Command: "export", Args: []string{out}}, io.Discard, io.Discard)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != out || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Run: %v, want a *FileError for %s wrapping ENOSPC", err, out)
	}
	msg := err.Error()
	for _, want := range []string{"no space left on device writing " + out, "free space", "choose another place"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	for _, bad := range []string{"control:", SocketName} {
		if strings.Contains(msg, bad) {
			t.Errorf("error %q blames the control socket (%q)", msg, bad)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
