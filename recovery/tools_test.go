//go:build bdb

package recovery

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestToolsAfterCrash: after 200 acknowledged commits and kill -9, every
// read-only tool run on the directory (on a fresh copy each, so each sees
// the crashed state) shows every acknowledged commit, never the files as
// the crash left them: stats counts them, check passes, export writes
// them, copy copies them, and serve --readonly answers them byte for byte.
// Both backends.
func TestToolsAfterCrash(t *testing.T) {
	for _, kind := range []string{"bdb", "leveldb"} {
		t.Run(kind, func(t *testing.T) { toolsAfterCrash(t, kind) })
	}
}

func toolsAfterCrash(t *testing.T, kind string) {
	bin := durusbdbBin(t)
	dir := t.TempDir()
	srv := startServer(t, dir, kind, "--checkpoint-interval", "1h", "--checkpoint-log-bytes", "1GiB")
	cls := setupRoot(t, srv.addr, 4, 100)
	acked := map[uint64][]byte{}
	for i := 0; i < 200; i++ {
		a, st, err := cls[i%4].commitOne()
		if err != nil || st != wire.StatusOK {
			t.Fatalf("commit %d: %q %v", i, st, err)
		}
		acked[a.oid] = a.rec
	}
	srv.kill(t)
	minObjects := uint64(1 + 4 + len(acked))

	fresh := func() string {
		cp := filepath.Join(t.TempDir(), "db")
		if out, err := exec.Command("cp", "-a", dir, cp).CombinedOutput(); err != nil {
			t.Fatalf("copy: %v %s", err, out)
		}
		return cp
	}
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("durusbdb %v: %v\n%s%s", args, err, out, stderr)
		}
		return out
	}

	t.Run("stats", func(t *testing.T) {
		var st struct{ Objects uint64 }
		if err := json.Unmarshal(run("stats", "--dir", fresh(), "--json"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Objects < minObjects {
			t.Fatalf("stats after a crash: %d objects, want at least %d", st.Objects, minObjects)
		}
	})
	t.Run("check", func(t *testing.T) { run("check", "--dir", fresh()) })
	t.Run("export", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "export.durus")
		run("export", "--dir", fresh(), out)
		r, err := filestorage.Open(out, filestorage.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		found := 0
		err = r.Records(context.Background(), func(rec []byte) error {
			if want, ok := acked[record.OID(rec)]; ok {
				if !bytes.Equal(rec, want) {
					t.Errorf("export: oid %d differs", record.OID(rec))
				}
				found++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if found != len(acked) {
			t.Fatalf("export after a crash holds %d of %d acknowledged records", found, len(acked))
		}
	})
	t.Run("copy", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "copy")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		run("copy", fresh(), dst)
		var st struct{ Objects uint64 }
		if err := json.Unmarshal(run("stats", "--dir", dst, "--json"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Objects < minObjects {
			t.Fatalf("copy after a crash: %d objects, want at least %d", st.Objects, minObjects)
		}
	})
	t.Run("serve --readonly", func(t *testing.T) {
		ro := startServer(t, fresh(), kind, "--readonly")
		c, err := wire.Dial(ro.addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for oid, want := range acked {
			st, rec, err := c.Load(oid)
			if err != nil || st != wire.StatusOK || !bytes.Equal(rec, want) {
				t.Fatalf("serve --readonly after a crash: oid %d: %q %v", oid, st, err)
			}
		}
		ro.quit(t)
	})
}
