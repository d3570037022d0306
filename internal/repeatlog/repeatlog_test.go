package repeatlog

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testlog"
)

// TestFailure: a failure repeated at every tick is logged once, again
// once Every has passed (with the count), and its end once; a success
// with no failure before logs nothing.
func TestFailure(t *testing.T) {
	var logs testlog.Buffer
	f := Failure{Log: slog.New(slog.NewTextHandler(&logs, nil)), Msg: "loop failed", Every: 200 * time.Millisecond}
	f.Note(nil)
	boom := errors.New("boom")
	for range 100 {
		f.Note(boom, "dir", "/d")
	}
	if n := strings.Count(logs.String(), "loop failed\""); n != 1 {
		t.Fatalf("%d lines for 100 failures in a row, want 1:\n%s", n, logs.String())
	}
	time.Sleep(250 * time.Millisecond)
	f.Note(boom, "dir", "/d")
	if !strings.Contains(logs.String(), "failures_in_a_row=101") {
		t.Fatalf("no second line once Every passed:\n%s", logs.String())
	}
	f.Note(nil, "dir", "/d")
	f.Note(nil, "dir", "/d")
	if n := strings.Count(logs.String(), "works again"); n != 1 || !strings.Contains(logs.String(), "failures=101") {
		t.Fatalf("the end of the failures: %d lines:\n%s", n, logs.String())
	}
}
