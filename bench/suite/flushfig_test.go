package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestFlushCounters: the two counters are read from a metrics page, and a
// page without them is an error (the row would otherwise read 0 µs).
func TestFlushCounters(t *testing.T) {
	var page atomic.Value
	page.Store("# TYPE durusbdb_group_flush_seconds_total counter\ndurusbdb_group_flush_seconds_total 1.5\n" +
		"# TYPE durusbdb_group_flushes_total counter\ndurusbdb_group_flushes_total 6000\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			w.Write([]byte(page.Load().(string)))
		}
	}))
	defer srv.Close()
	maddr := strings.TrimPrefix(srv.URL, "http://")
	secs, flushes, err := flushCounters(maddr)
	if err != nil || secs != 1.5 || flushes != 6000 {
		t.Fatalf("flushCounters = %v, %v, %v; want 1.5, 6000, nil", secs, flushes, err)
	}
	page.Store("# TYPE durusbdb_group_flushes_total counter\ndurusbdb_group_flushes_total 6000\n")
	if _, _, err := flushCounters(maddr); err == nil || !strings.Contains(err.Error(), "durusbdb_group_flush_seconds_total") {
		t.Fatalf("a page without the flush seconds: err %v, want one naming the counter", err)
	}
}
