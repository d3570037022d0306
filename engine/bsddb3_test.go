//go:build bdb

package engine

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/durus/record"
	"github.com/durusbdb/durusbdb/internal/testpy"
)

func runPython(t *testing.T, script string, args ...string) []byte {
	t.Helper()
	python := testpy.Python(t, "bsddb3")
	f := filepath.Join(t.TempDir(), "script.py")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, append([]string{f}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("python: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("python: %v", err)
	}
	return out
}

const pyEnv = `
import sys, json, struct, time
from bsddb3 import db
d = sys.argv[1]
env = db.DBEnv()
env.open(d, db.DB_CREATE | db.DB_INIT_TXN | db.DB_INIT_LOG | db.DB_INIT_LOCK | db.DB_INIT_MPOOL | db.DB_THREAD | db.DB_RECOVER)
def opendb(name, kind=db.DB_BTREE, pagesize=0):
    h = db.DB(env)
    if pagesize:
        h.set_pagesize(pagesize)
    h.open(name, None, kind, db.DB_CREATE | db.DB_AUTO_COMMIT | db.DB_THREAD)
    return h
def oid(n): return struct.pack(">Q", n)
def rec(n, *refs):
    data = b"d%d" % n
    return oid(n) + struct.pack(">I", len(data)) + data + b"".join(oid(r) for r in refs)
`

// TestBsddb3Writes builds a directory with Python's bsddb3 from FORMAT.md
// and opens it with the engine.
func TestBsddb3Writes(t *testing.T) {
	dir := t.TempDir()
	runPython(t, pyEnv+`
meta = opendb("meta.db"); objs = opendb("objects.db", pagesize=16384)
rc = opendb("refcounts.db"); gb = opendb("garbage.db")
txn = env.txn_begin()
meta.put(b"layout", b"durusbdb/1", txn=txn)
meta.put(b"access", b"btree", txn=txn)
meta.put(b"size", struct.pack(">Q", 4), txn=txn)
meta.put(b"next_oid", struct.pack(">Q", 2048), txn=txn)
meta.put(b"created", b"2007-01-02T03:04:05Z", txn=txn)
meta.put(b"writer", b"durus-berkeleydbstorage by hand", txn=txn)
meta.put(b"gc", struct.pack(">QQ", 3, 40), txn=txn)
for r in [rec(0, 1, 2, 1), rec(1, 2), rec(2), rec(7, 2)]:
    objs.put(r[:8], r, txn=txn)
rc.put(oid(1), struct.pack(">I", 1), txn=txn)
rc.put(oid(2), struct.pack(">I", 3), txn=txn)
gb.put(oid(7), struct.pack(">Q", int(time.time()*1000) - 3600*1000), txn=txn)
txn.commit()
for h in (meta, objs, rc, gb): h.close()
env.close()
`, dir)
	db := openTest(t, dir, testOpts("bdb"))
	if n, _ := db.Size(); n != 4 {
		t.Fatalf("size %d", n)
	}
	if got, err := db.Load(0); err != nil || !bytes.Equal(got, rec(0, 1, 2, 1)) {
		t.Fatalf("load 0: %x %v", got, err)
	}
	if db.AllocCursor() != 2048 {
		t.Fatalf("cursor %d", db.AllocCursor())
	}
	rep, err := db.Check(context.Background(), false)
	if err != nil || !rep.OK() {
		t.Fatalf("check %v %v", err, rep.Problems)
	}
	st, _ := db.Stats()
	if st.GCCollections != 3 || st.GCFreed != 40 || st.GCQueue != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The queued object is past its grace: the collector takes it.
	if n, err := db.CollectGarbage(context.Background(), 0); n != 1 || err != nil {
		t.Fatalf("collect %d %v", n, err)
	}
	verifyInvariants(t, db)
}

// TestBsddb3Reads opens an engine-written directory with bsddb3 and checks
// every key and value.
func TestBsddb3Reads(t *testing.T) {
	dir := t.TempDir()
	o := testOpts("bdb")
	o.GCGrace = -1
	db := openTest(t, dir, o)
	mustAlloc(t, db, 5)
	start := time.Now().UnixMilli()
	mustCommit(t, db, rec(0, 1, 2, 2), rec(1, 2), rec(2), rec(3, 1), rec(4))
	if n, err := db.CollectGarbage(context.Background(), 1); n != 1 || err != nil { // removes 3 (lowest queued)
		t.Fatalf("collect %d %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out := runPython(t, pyEnv+`
res = {}
for name, kind in (("meta.db", db.DB_BTREE), ("objects.db", db.DB_UNKNOWN), ("refcounts.db", db.DB_BTREE), ("garbage.db", db.DB_BTREE)):
    h = db.DB(env)
    h.open(name, None, kind, db.DB_AUTO_COMMIT | db.DB_THREAD | db.DB_RDONLY)
    res[name] = {"type": h.get_type(), "pagesize": h.stat().get("pagesize", 0), "kv": {k.hex(): v.hex() for k, v in h.items()}}
    h.close()
env.close()
print(json.dumps(res))
`, dir)
	var res map[string]struct {
		Type     int               `json:"type"`
		PageSize int               `json:"pagesize"`
		KV       map[string]string `json:"kv"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	h := func(b []byte) string { return hex.EncodeToString(b) }
	k := func(o uint64) string { return h(record.OIDBytes(o)) }
	objs := res["objects.db"]
	if objs.PageSize != 16384 {
		t.Errorf("objects.db page size %d", objs.PageSize)
	}
	want := map[string]string{k(0): h(rec(0, 1, 2, 2)), k(1): h(rec(1, 2)), k(2): h(rec(2)), k(4): h(rec(4))}
	if len(objs.KV) != len(want) {
		t.Errorf("objects %v", objs.KV)
	}
	for key, v := range want {
		if objs.KV[key] != v {
			t.Errorf("objects[%s] = %s, want %s", key, objs.KV[key], v)
		}
	}
	counts := res["refcounts.db"].KV
	if len(counts) != 2 || counts[k(1)] != "00000001" || counts[k(2)] != "00000002" {
		t.Errorf("refcounts %v", counts)
	}
	g := res["garbage.db"].KV
	if len(g) != 1 || g[k(4)] == "" {
		t.Fatalf("garbage %v", g)
	}
	if ts, _ := hex.DecodeString(g[k(4)]); len(ts) != 8 || int64(record.OID(ts)) < start-1000 || int64(record.OID(ts)) > time.Now().UnixMilli() {
		t.Errorf("garbage time %x", ts)
	}
	m := res["meta.db"].KV
	wantMeta := map[string]string{
		"layout": h([]byte("durusbdb/1")), "access": h([]byte("btree")), "size": h(int8Bytes(4)),
		"next_oid": h(int8Bytes(1024)), "writer": h([]byte("durusbdb " + Version)),
		"gc": h(gcProgress{Collections: 1, Freed: 1}.encode()),
	}
	for key, v := range wantMeta {
		if m[h([]byte(key))] != v {
			t.Errorf("meta %s = %s, want %s", key, m[h([]byte(key))], v)
		}
	}
	if _, ok := m[h([]byte("in_use"))]; ok {
		t.Error("in_use left after close")
	}
	if len(m) != len(wantMeta)+1 {
		t.Errorf("meta keys %v", m)
	}
}
