"""Pack: unreachable objects go, reachable ones stay (C23, C42, C45); oid reuse (A1)."""

import time

import pytest

from durus.connection import Connection
from durus.error import DurusKeyError, ReadConflictError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.utils import int8_to_str

from interop_util import TARGET_DURUSBDB, differs, poll


class Thing(Persistent):
    def __init__(self, value=None):
        self.value = value


def gone(storage, oid):
    """True once oid has no record; syncs when the server says the oid is invalid.

    The reference answers K for a packed oid until the next S or C; durusbdb
    answers I at once ([differs] PROTOCOL.md 5.2). The client handles both."""
    try:
        storage.load(oid)
    except ReadConflictError:
        storage.sync()
        return False
    except DurusKeyError:
        return True
    return False


def test_pack_removes_unreachable_keeps_reachable(server, clients, key):
    connection = clients(server)
    root = connection.get_root()
    d = root[key] = PersistentDict()
    d["kept"] = Thing("kept value")
    d["kept"].child = Thing("grandchild")
    d["gone"] = Thing("gone value")
    d["gone"].child = Thing("gone child")
    # Bulk of reachable objects (C42 speaks of a 1,000-object database).
    d["many"] = [Thing(i) for i in range(1000)]
    connection.commit()

    storage = connection.get_storage()
    kept_oid = d["kept"]._p_oid
    kept_child_oid = d["kept"].child._p_oid
    gone_oid = d["gone"]._p_oid
    gone_child_oid = d["gone"].child._p_oid
    records = {oid: storage.load(oid) for oid in (kept_oid, kept_child_oid)}

    del d["gone"]
    connection.commit()
    # Still there before the pack (no collection without P for the reference;
    # the durusbdb grace period covers the next seconds, C41).
    assert not gone(storage, gone_oid)

    watcher = clients.storage(server)     # another open connection (C23)
    watcher.sync()

    connection.pack()
    # C42 asks for 0.5 s on a 1,000-object database; 1 s leaves room for a busy machine.
    assert poll(lambda: gone(storage, gone_oid), timeout=1.0), "packed oid still loadable after 1 s"
    assert poll(lambda: gone(storage, gone_child_oid), timeout=1.0)

    # The other connection is told about the removal (C23)...
    told = set()
    poll(lambda: told.update(watcher.sync()) or gone_oid in told, timeout=2.0)
    assert gone_oid in told
    # ...and can no longer load it.
    with pytest.raises(DurusKeyError):
        watcher.load(gone_oid)

    # Everything reachable is intact, byte for byte.
    for oid, record in records.items():
        assert storage.load(oid) == record
    other = clients(server)
    od = other.get_root()[key]
    assert od["kept"].value == "kept value"
    assert od["kept"].child.value == "grandchild"
    assert [t.value for t in od["many"]] == list(range(1000))
    assert "gone" not in od
    # The root is never removed (C45).
    storage.load(int8_to_str(0))


def test_pack_twice_and_commit_during(server, clients, key):
    connection = clients(server)
    root = connection.get_root()
    root[key] = Thing("before")
    connection.commit()
    connection.pack()
    connection.pack()          # a second P while one may be running: still O (C14)
    root[key] = Thing("during")
    connection.commit()
    time.sleep(0.5)
    other = clients(server)
    assert other.get_root()[key].value == "during"


@differs(TARGET_DURUSBDB, "A1: durusbdb never reuses an oid; Durus's Shelf hands packed oids out again",
         raises=AssertionError)
def test_oid_reused_after_pack(fresh_server, clients):
    """Durus 4.3 reuses the oid of a packed object (as its check_oid_reuse)."""
    srv = fresh_server()
    storage = clients.storage(srv)
    storage.oid_pool_size = 1
    c1 = Connection(storage)
    root = c1.get_root()
    root["a"] = Thing("a")
    root["b"] = Thing("b")
    c1.commit()
    a_oid = root["a"]._p_oid
    del root["a"]
    c1.commit()
    c1.pack()
    assert poll(lambda: gone(c1.get_storage(), a_oid), timeout=5.0)
    c1.abort()
    new = Thing("new")
    root["b"].new = new
    c1.commit()
    assert new._p_oid == a_oid
