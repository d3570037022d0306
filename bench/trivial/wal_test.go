package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestWALSyncWritesAppended: what was appended before sync is in the log
// file when sync returns, from many committers at once, and the log
// wraps to its start when full.
func TestWALSyncWritesAppended(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	w, err := openWAL(path, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer w.f.Close()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.append(bytes.Repeat([]byte{byte('a' + i)}, 8))
			if err := w.sync(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 64 {
		t.Fatalf("log is %d bytes, want its 64 written ahead", len(got))
	}
	for i := range 4 {
		if !bytes.Contains(got[:32], bytes.Repeat([]byte{byte('a' + i)}, 8)) {
			t.Errorf("log %q lacks committer %d's 8 bytes after its sync", got[:32], i)
		}
	}
	// 32 more bytes fit (32..64); the next 8 wrap to offset 0.
	w.append(bytes.Repeat([]byte{'x'}, 32))
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	w.append(bytes.Repeat([]byte{'y'}, 8))
	if err := w.sync(); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if !bytes.Equal(got[32:], bytes.Repeat([]byte{'x'}, 32)) || !bytes.Equal(got[:8], bytes.Repeat([]byte{'y'}, 8)) {
		t.Errorf("log after a wrap = %q", got)
	}
}
