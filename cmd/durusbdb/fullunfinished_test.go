package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/engine"
)

// TestCheckNamesUnfinishedFullCollection: after a full collection stopped
// in its sweep, `check` exits 3 with a note that names the cause and the
// remedy, `stats` says it did not finish, and the remedy it names, `gc
// --full`, makes the check clean.
func TestCheckNamesUnfinishedFullCollection(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	sweeps := 0
	db, err := engine.Open(context.Background(), dir, engine.Options{Create: true, Backend: "leveldb",
		GC: engine.GCPolicy{Mode: engine.GCManual}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnFullPhase: func(phase string) {
			if phase == "sweep" {
				if sweeps++; sweeps == 2 {
					cancel()
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Unreachable pairs k -> k+1000: the first sweep batch deletes
	// referrers whose referents a later batch would have taken.
	if _, err := db.AllocOIDs(2000); err != nil {
		t.Fatal(err)
	}
	recs := [][]byte{record.Build(0, []byte("root"))}
	for k := uint64(1); k < 1000; k++ {
		recs = append(recs, record.Build(k, []byte("a"), k+1000), record.Build(k+1000, []byte("b")))
	}
	p, err := db.Stage(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FullCollect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("full collection: %v, want it cancelled", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runCLI(t, nil, "check", "--dir", dir)
	if code != exitProblems || !strings.Contains(out, "did not finish") || !strings.Contains(out, "durusbdb gc --dir "+dir+" --full") {
		t.Fatalf("check: exit %d, want %d with the note\n%s%s", code, exitProblems, out, stderr)
	}
	if code, out, stderr := runCLI(t, nil, "stats", "--dir", dir); code != exitOK || !strings.Contains(out, "did not finish") {
		t.Errorf("stats: exit %d, lacks the unfinished collection\n%s%s", code, out, stderr)
	}
	if code, out, stderr := runCLI(t, nil, "gc", "--dir", dir, "--full"); code != exitOK {
		t.Fatalf("gc --full: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr := runCLI(t, nil, "check", "--dir", dir); code != exitOK || strings.Contains(out, "did not finish") {
		t.Fatalf("check after gc --full: exit %d\n%s%s", code, out, stderr)
	}
}
