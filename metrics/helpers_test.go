package metrics

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/durusbdb/durusbdb/durus/record"
)

// rec builds a record with data text and refs.
func rec(oid uint64, text string, refs ...uint64) []byte {
	return record.Build(oid, []byte(text), refs...)
}

// parseExposition reads the Prometheus text format into a map from
// `name{labels}` (as printed) to value.
func parseExposition(t testing.TB, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad exposition line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// gatherValues scrapes m's handler in process.
func gatherValues(t testing.TB, m *Metrics) map[string]float64 {
	t.Helper()
	rr := httptest.NewRecorder()
	m.Handler(nil).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("scrape: HTTP %d: %s", rr.Code, rr.Body.String())
	}
	return parseExposition(t, rr.Body.String())
}
