package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/backend"
	"github.com/durusbdb/durusbdb/durus/filestorage"
	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testwait"
)

// A directory backup carried out by a LevelDB database's server is
// all-or-nothing like any other: the client writes the files it receives
// into a staging directory and moves it into place only when the backup
// is complete. Killed (SIGKILL) while files arrive, it leaves nothing at
// OUT (it wrote them straight into OUT before), and the next backup into
// OUT works.
func TestLiveBackupKilledLeavesNothing(t *testing.T) {
	bin := cliBinary(t)
	base := t.TempDir()
	dir := filepath.Join(base, "db")
	// About 40 MB that snappy cannot shrink, so that the files take a
	// while to arrive.
	src := filepath.Join(base, "big.durus")
	rng := rand.New(rand.NewPCG(1, 2))
	_, err := filestorage.WriteShelf(src, filestorage.WriteOptions{}, func(yield func(uint64, []byte) error) error {
		data := make([]byte, 2000)
		for oid := uint64(0); oid < 20000; oid++ {
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			var refs []uint64
			if oid+1 < 20000 {
				refs = []uint64{oid + 1}
			}
			if err := yield(oid, record.Build(oid, data, refs...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustTool(t, bin, "migrate", "--dir", dir, "--create", "--backend", backend.LevelDB, src)
	p := startServeWait(t, bin, dir, backend.LevelDB, "control socket listening")
	defer p.quit(t)

	parent := t.TempDir()
	out := filepath.Join(parent, "b")
	cmd := exec.Command(bin, "backup", "--dir", dir, out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// arriving reports a file being received, in OUT or in a staging
	// directory beside it.
	arriving := func() bool {
		m, _ := filepath.Glob(filepath.Join(parent, "*", "*"))
		h, _ := filepath.Glob(filepath.Join(parent, ".*", "*"))
		return len(m)+len(h) > 0
	}
	deadline := time.Now().Add(testwait.Timeout)
	for !arriving() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !arriving() {
		t.Fatal("no file of the backup arrived")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		ents, _ := os.ReadDir(out)
		t.Fatalf("a backup killed while its files arrived left %s (%d entries): %v", out, len(ents), err)
	}
	res := mustTool(t, bin, "backup", "--dir", dir, out)
	if !strings.Contains(res, "snapshot by the server") {
		t.Fatalf("the backup was not carried out by the server:\n%s", res)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("after the next backup %s holds %v, want only b", parent, names)
	}
	mustTool(t, bin, "backup", "--verify", out)
}

// A backup that a LevelDB database's server carries out takes --keep like
// any other (the manifests name the database, not the server's snapshot
// of it, so retention finds the older backups), and backup --verify with
// DURUSBDB_DIR naming that database is not sent to the server.
func TestLiveBackupKeepAndVerify(t *testing.T) {
	bin := cliBinary(t)
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, bin, dir, backend.LevelDB)
	defer p.quit(t)
	parent := t.TempDir()
	for _, name := range []string{"b1", "b2", "b3"} {
		res := mustTool(t, bin, "backup", "--dir", dir, "--keep", "2", filepath.Join(parent, name))
		if !strings.Contains(res, "snapshot by the server") {
			t.Fatalf("the backup was not carried out by the server:\n%s", res)
		}
	}
	var names []string
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "b2,b3" {
		t.Fatalf("after three backups with --keep 2, %s holds %v, want b2 and b3", parent, names)
	}
	cmd := exec.Command(bin, "backup", "--verify", filepath.Join(parent, "b3"))
	cmd.Env = append(os.Environ(), "DURUSBDB_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup --verify with DURUSBDB_DIR naming a served LevelDB database: %v\n%s", err, out)
	}
}
