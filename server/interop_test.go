package server

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/durusbdb/durusbdb/internal/testpy"
)

// pythonPath returns the Python with Durus 4.3, or fails the test.
func pythonPath(t *testing.T) string { return testpy.Python(t, "durus") }

// stockScript drives the stock Durus 4.3 client against the server at
// sys.argv[1] (port or unix path). It covers C25, C39, C40 and pack (C23).
const stockScript = `
import sys, time
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent_dict import PersistentDict
from durus.persistent import Persistent
from durus.error import ConflictError
from durus.utils import int8_to_str

where = sys.argv[1]
def storage():
    if where.isdigit():
        return ClientStorage(port=int(where))
    return ClientStorage(address=where)

# C39: the first client takes oids 0..31 and leaves without committing.
s0 = storage()
first = s0.new_oid()
assert first == int8_to_str(0), first
s0.close()

# C40: a Connection on the fresh database creates a PersistentDict root at 0.
c1 = Connection(storage())
root1 = c1.get_root()
assert type(root1) is PersistentDict, type(root1)
assert root1._p_oid == int8_to_str(0)
c2 = Connection(storage())
root2 = c2.get_root()

# C25: commit, the other sees it after abort, and a conflict.
root1['a'] = PersistentDict()
root1['a']['x'] = 1
c1.commit()
c2.abort()
assert root2['a']['x'] == 1
root1['b'] = 1
root2['b'] = 2
c1.commit()
try:
    c2.commit()
    raise SystemExit('no conflict')
except ConflictError:
    pass
c2.abort()
assert root2['b'] == 1

# Pack: an unreachable object disappears, the reachable ones stay.
a_oid = root1['a']._p_oid
del root1['a']
c1.commit()
c1.pack()
time.sleep(0.5)
s3 = storage()
try:
    s3.load(a_oid)
    raise SystemExit('unreachable object survived pack')
except KeyError:
    pass
# Bulk load through the stock client.
recs = list(s3.bulk_load([int8_to_str(0)]))
assert len(recs) == 1
c2.abort()
assert root2['b'] == 1 and 'a' not in root2
for i in range(50):
    root1['k%d' % i] = PersistentDict()
c1.commit()
c2.abort()
assert len(root2) == 51, len(root2)
print('stock client ok')
`

// durusOwnScript is Durus 4.3's utest_client_storage check_client_storage
// and check_oid_reuse_with_invalidation, without the sancho harness (C69).
const durusOwnScript = `
import sys, time
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ReadConflictError, DurusKeyError
from durus.persistent import Persistent
from durus.serialize import pack_record
from durus.utils import int8_to_str, as_bytes

where = sys.argv[1]
address = ("127.0.0.1", int(where)) if where.isdigit() else where

def raises(exc, f, *args):
    try:
        f(*args)
    except exc:
        return
    raise SystemExit('%s not raised by %s' % (exc, f))

b = ClientStorage(address=address)
c = ClientStorage(address=address)
oid = b.new_oid()
assert oid == int8_to_str(0), repr(oid)
oid = b.new_oid()
assert oid == int8_to_str(1), repr(oid)
oid = b.new_oid()
assert oid == int8_to_str(2), repr(oid)
raises(KeyError, b.load, int8_to_str(0))
record = pack_record(int8_to_str(0), as_bytes('ok'), as_bytes(''))
b.begin()
b.store(int8_to_str(0), record)
assert b.end() is None
b.load(int8_to_str(0))
assert b.sync() == []
b.begin()
b.store(int8_to_str(1), pack_record(int8_to_str(1), as_bytes('no'), as_bytes('')))
b.end()
assert len(list(b.gen_oid_record())) == 1
records = b.bulk_load([int8_to_str(0), int8_to_str(1)])
assert len(list(records)) == 2
records = b.bulk_load([int8_to_str(0), int8_to_str(1), int8_to_str(2)])
raises(DurusKeyError, list, records)
b.pack()
assert len(list(b.gen_oid_record())) == 1
raises(ReadConflictError, c.load, int8_to_str(0))
raises(ReadConflictError, c.load, int8_to_str(0))
assert set(c.sync()) == set([int8_to_str(0), int8_to_str(1)]), c.sync()
assert record == c.load(int8_to_str(0))
b.close()
c.close()
print('durus own checks ok')
`

// oidReuseScript is utest_client_storage's check_oid_reuse_with_invalidation
// (it runs on a fresh server of its own).
const oidReuseScript = `
import sys, time
from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.persistent import Persistent
where = sys.argv[1]
address = ("127.0.0.1", int(where)) if where.isdigit() else where
connection = Connection(ClientStorage(address=address))
root = connection.get_root()
root['x'] = Persistent()
connection.commit()
connection = Connection(ClientStorage(address=address))
root = connection.get_root()
root['x'] = Persistent()
connection.commit()
connection.pack()
time.sleep(1)
connection = Connection(ClientStorage(address=address))
root = connection.get_root()
root['x'] = Persistent()
connection.commit()
print('oid reuse ok')
`

func runPython(t *testing.T, script string, args ...string) string {
	t.Helper()
	py := pythonPath(t)
	f := filepath.Join(t.TempDir(), "script.py")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, append([]string{f}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return string(out)
}

// C25, C39, C40, C23 with the stock client, over TCP and a unix socket, on
// the engine.
func TestStockClient(t *testing.T) {
	for _, k := range storeKinds()[1:] {
		t.Run(k.name+"/tcp", func(t *testing.T) {
			ts := startServer(t, Config{}, k.open(t))
			_, port, _ := net.SplitHostPort(ts.addr)
			if out := runPython(t, stockScript, port); !strings.Contains(out, "stock client ok") {
				t.Fatal(out)
			}
		})
		t.Run(k.name+"/durus-own", func(t *testing.T) {
			ts := startServer(t, Config{}, k.open(t))
			_, port, _ := net.SplitHostPort(ts.addr)
			if out := runPython(t, durusOwnScript, port); !strings.Contains(out, "durus own checks ok") {
				t.Fatal(out)
			}
			ts2 := startServer(t, Config{}, k.open(t))
			_, port2, _ := net.SplitHostPort(ts2.addr)
			if out := runPython(t, oidReuseScript, port2); !strings.Contains(out, "oid reuse ok") {
				t.Fatal(out)
			}
		})
		t.Run(k.name+"/unix", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s")
			ln, err := Listen(context.Background(), ListenConfig{Address: path, IgnoreSystemd: true})
			if err != nil {
				t.Fatal(err)
			}
			serveOn(t, Config{}, k.open(t), ln)
			if out := runPython(t, stockScript, path); !strings.Contains(out, "stock client ok") {
				t.Fatal(out)
			}
		})
	}
}

// C15 (part): Durus's own `durus -s --stop` stops the server.
func TestDurusStop(t *testing.T) {
	py := pythonPath(t)
	ts := startServer(t, Config{}, newMemStore())
	_, port, _ := net.SplitHostPort(ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-m", "durus", "-s", "--stop", "--port", port).CombinedOutput()
	if err != nil {
		t.Fatalf("durus -s --stop: %v\n%s", err, out)
	}
	select {
	case <-ts.done:
		ts.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("server still running after durus -s --stop")
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Fatal("still accepting")
	}
	_ = strconv.Itoa
}
