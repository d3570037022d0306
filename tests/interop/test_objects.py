"""Objects round-trip through the server: the seed's test3.py, persistent
containers, unicode and bytes, a 5 MB object, bulk_load, missing oids."""

import os

import pytest

from durus.btree import BTree
from durus.error import DurusKeyError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.serialize import unpack_record
from durus.utils import int8_to_str


class Thing(Persistent):
    """A plain persistent object with attributes."""


def test_test3_btree(server, clients, key):
    """The original's test3.py: 65536 int keys, delete the even ones, three commits."""
    connection = clients(server)
    root = connection.get_root()
    root[key] = BTree()
    connection.commit()

    for i in range(65536):
        root[key][i] = 0
    connection.commit()

    for i in range(0, 65536, 2):
        del root[key][i]
    connection.commit()

    assert len(root[key]) == 32768

    # A second client sees exactly the committed tree.
    other = clients(server)
    tree = other.get_root()[key]
    assert len(tree) == 32768
    assert list(tree.keys()) == list(range(1, 65536, 2))
    assert set(tree.values()) == {0}


def test_persistent_containers(server, clients, key):
    connection = clients(server)
    root = connection.get_root()
    d = PersistentDict()
    d["list"] = PersistentList([1, 2, 3, "four"])
    d["set"] = PersistentSet([1, 2, 3])
    d["nested"] = PersistentDict({"a": PersistentList(), "b": Thing()})
    d["nested"]["b"].x = 42
    root[key] = d
    connection.commit()

    d["list"].append(5)
    d["set"].add(99)
    d["set"].discard(1)
    d["nested"]["a"].extend(range(10))
    connection.commit()

    other = clients(server)
    d2 = other.get_root()[key]
    assert isinstance(d2, PersistentDict)
    assert list(d2["list"]) == [1, 2, 3, "four", 5]
    assert set(d2["set"]) == {2, 3, 99}
    assert list(d2["nested"]["a"]) == list(range(10))
    assert d2["nested"]["b"].x == 42
    assert d2["nested"]["b"]._p_oid == d["nested"]["b"]._p_oid


def test_unicode_and_bytes(server, clients, key):
    values = {
        "text": "h\u00e9llo w\u00f6rld \u2603 \U0001d11e \u65e5\u672c\u8a9e",
        "bytes": bytes(range(256)) * 3,
        "nul": b"\x00" * 100,
        "empty_text": "",
        "empty_bytes": b"",
        "big_int": 2 ** 100 + 1,
        "neg": -12345678901234,
        "float": 3.25,
        "tuple": ("a", b"b", 3, None, True),
        "\u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 key": "value",
        b"bytes key": "bytes key value",
    }
    connection = clients(server)
    root = connection.get_root()
    root[key] = PersistentDict(values)
    t = Thing()
    t.name = "\u0416\u0443\u043a"
    t.blob = os.urandom(1000)
    root[key]["thing"] = t
    connection.commit()

    other = clients(server)
    got = other.get_root()[key]
    for k, v in values.items():
        assert got[k] == v
        assert type(got[k]) is type(v)
    assert got["thing"].name == t.name
    assert got["thing"].blob == t.blob


def test_five_megabyte_object(server, clients, key):
    connection = clients(server)
    root = connection.get_root()
    big = Thing()
    big.data = os.urandom(5 * 1024 * 1024)   # incompressible: the record is > 5 MB
    big.text = "x" * (5 * 1024 * 1024)
    root[key] = big
    connection.commit()

    storage = connection.get_storage()
    record = storage.load(big._p_oid)
    assert len(record) > 5 * 1024 * 1024

    other = clients(server)
    got = other.get_root()[key]
    assert got.data == big.data
    assert got.text == big.text
    assert other.get_storage().load(big._p_oid) == record


def test_bulk_load(server, clients, key):
    connection = clients(server)
    root = connection.get_root()
    items = PersistentList(Thing() for _ in range(50))
    for i, item in enumerate(items):
        item.i = i
    root[key] = items
    connection.commit()

    oids = [item._p_oid for item in items]
    storage = clients.storage(server)
    records = list(storage.bulk_load(oids))
    assert len(records) == len(oids)
    for oid, record in zip(oids, records):
        record_oid, data, refs = unpack_record(record)
        assert record_oid == oid
        assert record == storage.load(oid)
    # Repeated oids are answered each time, in request order.
    again = list(storage.bulk_load([oids[3], oids[1], oids[3]]))
    assert again == [records[3], records[1], records[3]]
    # An empty bulk load.
    assert list(storage.bulk_load([])) == []


def test_bulk_load_missing_oid(server, clients):
    clients(server).get_root()   # makes sure the root exists
    storage = clients.storage(server)
    root_record = storage.load(int8_to_str(0))
    missing = int8_to_str(2 ** 40 + 7)
    with pytest.raises(DurusKeyError):
        list(storage.bulk_load([int8_to_str(0), missing]))
    # A fresh client: the stock client leaves unread responses after an
    # error (PROTOCOL.md D16), so never reuse that one.
    fresh = clients.storage(server)
    assert list(fresh.bulk_load([int8_to_str(0)])) == [root_record]


def test_missing_oid(server, clients):
    connection = clients(server)
    connection.get_root()   # makes sure the root exists
    storage = connection.get_storage()
    missing = int8_to_str(2 ** 40 + 3)
    with pytest.raises(DurusKeyError):
        storage.load(missing)
    # Also a KeyError, as Durus callers catch it.
    with pytest.raises(KeyError):
        storage.load(missing)
    # An oid handed out but never committed has no record either.
    new = storage.new_oid()
    with pytest.raises(DurusKeyError):
        storage.load(new)
    # Connection.get of a missing oid gives None.
    assert connection.get(missing) is None
    # The connection keeps working.
    assert connection.get_root() is not None
    storage.load(int8_to_str(0))


def test_many_objects_one_commit(server, clients, key):
    """A commit of 10,000 records (C56) round-trips."""
    connection = clients(server)
    root = connection.get_root()
    items = PersistentList()
    for i in range(10000):
        t = Thing()
        t.i = i
        items.append(t)
    root[key] = items
    connection.commit()
    other = clients(server)
    got = other.get_root()[key]
    assert [t.i for t in got] == list(range(10000))
    # One bulk load of all of them, in order.
    oids = [t._p_oid for t in items]
    storage = clients.storage(server)
    records = list(storage.bulk_load(oids))
    assert [r[:8] for r in records] == oids
