//go:build bdb

package bdb

import (
	"errors"
	"testing"

	"github.com/durusbdb/durusbdb/kv"
)

// TestTxnEndRacesClose: a Commit that fails (here: a transaction whose
// libdb handle is already dead) reads libdb's last error message while
// Env.Close runs on another goroutine. Under -race this fails if the
// message is read without the lock Close takes to clear the handle; without
// -race, reading a cleared handle panics.
func TestTxnEndRacesClose(t *testing.T) {
	failed := 0
	for range 8 {
		e, err := OpenEnv(t.TempDir(), EnvOptions{CacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := e.Begin(TxnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.lt.Abort(); err != nil { // the handle is dead: Commit fails
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- e.Close() }()
		err = tx.Commit(kv.Sync)
		switch {
		case errors.Is(err, ErrClosed):
			// Close ended the transaction first: nothing to race with.
		case err != nil:
			failed++
		default:
			t.Fatal("Commit of a dead transaction handle succeeded")
		}
		if err := <-closed; err != nil && failed == 0 {
			t.Logf("close: %v", err)
		}
	}
	if failed == 0 {
		t.Fatal("Close always ended the transaction before Commit: the race was never exercised")
	}
}
