//go:build bdb

package recovery

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/bdb"
	"github.com/durusbdb/durusbdb/internal/wire"
)

// TestServerStopsOnEnvironmentPanic: when the Berkeley DB environment
// panics under a serving server (here another process sets
// DB_PANIC_ENVIRONMENT on the shared environment, as libdb does itself on
// a fatal error), the server notices within seconds even while idle, logs
// why, closes its connections and exits non-zero; restarted at once, it
// recovers and every acknowledged commit is there.
func TestServerStopsOnEnvironmentPanic(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir, "bdb")
	cls := setupRoot(t, srv.addr, 2, 200)
	var acks []ack
	for i := 0; i < 50; i++ {
		a, st, err := cls[i%2].commitOne()
		if err != nil || st != wire.StatusOK {
			t.Fatalf("commit %d: %q %v", i, st, err)
		}
		acks = append(acks, a)
	}
	idle, err := wire.Dial(srv.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	env, err := bdb.JoinEnv(dir, 0)
	if err != nil {
		t.Fatalf("join the server's environment: %v", err)
	}
	if err := env.Panic(); err != nil {
		t.Fatalf("panic the environment: %v", err)
	}
	env.Close()

	select {
	case <-srv.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("server still running 20 s after its environment panicked\n%s", srv.logText())
	}
	if srv.Err() == nil {
		t.Fatalf("server exited 0 after its environment panicked\n%s", srv.logText())
	}
	if log := srv.logText(); !strings.Contains(log, "storage failed") {
		t.Fatalf("server log does not say why it stopped:\n%s", log)
	}
	if _, _, err := idle.Load(0); err == nil {
		t.Fatal("a connection of the failed server still answers")
	}

	srv = startServer(t, dir, "bdb")
	c, err := wire.Dial(srv.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, a := range acks {
		st, rec, err := c.Load(a.oid)
		if err != nil || st != wire.StatusOK || !bytes.Equal(rec, a.rec) {
			t.Fatalf("acknowledged oid %d after the panic and a restart: %q %v", a.oid, st, err)
		}
	}
	srv.quit(t)
}
