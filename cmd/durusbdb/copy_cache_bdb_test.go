//go:build bdb

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/engine"
	"github.com/durusbdb/durusbdb/kv"
)

// TestCopyCacheSizeAppliesToDst: copy's --cache-size sizes the Berkeley
// DB environment of DST too (on a small file system the room its region
// files may take is what a smaller cache makes fit): both opens of the
// destination, the store the copy fills and the engine open that checks
// it, get the cache asked for (seen through the opens the command is
// given, copyOpens; the environment's region files, created lazily, do
// not show the cache size reliably).
func TestCopyCacheSizeAppliesToDst(t *testing.T) {
	src, sdb := newTestDB(t, "bdb")
	if err := sdb.Close(); err != nil {
		t.Fatal(err)
	}
	var storeOpts kv.Options
	var engineOpts engine.Options
	cmd := newCopyCommand(copyOpens{
		openStore: func(o kv.Options, kind string) (kv.Store, string, error) {
			storeOpts = o
			return backend.Open(o, kind)
		},
		openEngine: func(ctx context.Context, dir string, o engine.Options) (*engine.DB, error) {
			engineOpts = o
			return engine.Open(ctx, dir, o)
		},
	})
	dst := filepath.Join(t.TempDir(), "copy")
	var out, stderr bytes.Buffer
	cio := cmdIO{stdin: strings.NewReader(""), stdout: &out, stderr: &stderr}
	cc := cmd.cobra(&cio)
	cc.SetArgs([]string{"--backend", "bdb", "--cache-size", "8MiB", src, dst})
	if err := cc.ExecuteContext(context.Background()); err != nil || !strings.Contains(out.String(), "copied ") {
		t.Fatalf("copy: %v\n%s%s", err, out.String(), stderr.String())
	}
	if kind, err := backend.Detect(dst); err != nil || kind != backend.BDB {
		t.Fatalf("DST holds %q (%v), want bdb", kind, err)
	}
	if storeOpts.CacheSize != 8<<20 {
		t.Errorf("DST store opened with cache %d, want %d (--cache-size 8MiB)", storeOpts.CacheSize, 8<<20)
	}
	if engineOpts.CacheSize != 8<<20 || engineOpts.RecordCache >= 0 {
		t.Errorf("DST engine opened with cache %d, record cache %d; want %d, none", engineOpts.CacheSize, engineOpts.RecordCache, 8<<20)
	}
}
