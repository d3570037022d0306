"""Write real Durus object records for the reference-scan tests (C57).

usage: python gen_records.py OUT

Runs with Durus 4.3 on Python 3 and with Durus 4.2 on Python 2. Builds a
database in a temporary FileStorage through durus.connection.Connection with
persistent dicts, lists, sets, BTrees, nested classes, oids >= 2**32 and oids
containing bytes >= 0x80, repeated references and references to objects of
the record's own class; commits half of it with compressed state pickles and
half uncompressed. OUT receives every record as int4 (big-endian) length +
record bytes, in ascending oid order.
"""
import struct
import sys

import durus.serialize
from durus.btree import BTree
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.persistent_set import PersistentSet
from durus.utils import int8_to_str, str_to_int8


class Outer(object):
    class Inner(Persistent):
        """A nested class: Python 3 pickles it as REDUCE(getattr, ...)."""


class Node(Persistent):
    """References objects of its own class."""


class ChosenOids(FileStorage):
    """Hands out the oids of a list first, then its own."""

    def __init__(self):
        FileStorage.__init__(self)
        self.chosen = []

    def new_oid(self):
        if self.chosen:
            oid = int8_to_str(self.chosen.pop(0))
            self.allocated_unused_oids.add(oid)
            return oid
        return FileStorage.new_oid(self)


def main(out):
    chosen = [2**32, 2**32 + 0x80, 0x80, 0xFF, 0x8081828384858687,
              2**40 + 0xC3BF, 0x00FF00FF00FF00FF, 2**63 + 5, 0x7F7F7F7F7F7F7F7F]
    storage = ChosenOids()
    conn = Connection(storage)
    root = conn.get_root()
    storage.chosen = list(chosen)  # the root took oid 0
    # Compressed first.
    durus.serialize.WRITE_COMPRESSED_STATE_PICKLES = True
    big = [Node() for _ in range(len(chosen))]
    for i, n in enumerate(big):
        root["n%d" % i] = n
    conn.commit()
    for i, n in enumerate(big):
        n.next = big[(i + 1) % len(big)]
        n.same = [n, n, n]
        n.data = b"\x00" * 8  # 8 bytes, not a reference
    shared = Persistent()
    root["list"] = PersistentList([shared, shared, shared, shared])
    root["dict"] = PersistentDict([("a", PersistentDict()), ("b", PersistentDict())])
    root["dict"]["a"]["self"] = root["dict"]["a"]
    root["set"] = PersistentSet([shared])
    conn.commit()
    # Uncompressed from here on.
    durus.serialize.WRITE_COMPRESSED_STATE_PICKLES = False
    # Python 2 cannot pickle a nested class.
    root["inner"] = Outer.Inner() if sys.version_info[0] >= 3 else Node()
    root["inner"].x = (shared, u"text \xe9\u20ac", 3.5, 2**70, None, True)
    tree = BTree()
    for i in range(400):
        tree[i] = Node() if i % 50 == 0 else ("value %d" % i)
    root["tree"] = tree
    root["plain"] = Node()
    root["plain"].refs = {"x": big[0], "y": big[1], "z": big[0]}
    conn.commit()
    # Re-commit some compressed objects uncompressed and vice versa.
    big[0].touched = 1
    durus.serialize.WRITE_COMPRESSED_STATE_PICKLES = True
    root["plain"].touched = 1
    conn.commit()
    oids = sorted(str_to_int8(oid) for oid, _ in storage.gen_oid_record())
    with open(out, "wb") as f:
        for oid in oids:
            rec = storage.load(int8_to_str(oid))
            f.write(struct.pack(">I", len(rec)))
            f.write(rec)


if __name__ == "__main__":
    main(sys.argv[1])
