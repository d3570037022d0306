"""Make and check Durus FileStorage files for the filestorage tests.

Runs with Durus 4.3 on Python 3 and Durus 4.2 on Python 2.

usage:
  durusfiles.py shelf OUT DUMP      Shelf file: commits, a pack that leaves
                                    holes, commits after the pack (appended
                                    transactions, holes reused)
  durusfiles.py appended OUT DUMP   Shelf file never packed: empty base, every
                                    record in appended transactions
  durusfiles.py dfs20 OUT DUMP      DFS20 file (FileStorage2): commits, pack,
                                    commits after the index
  durusfiles.py dump FILE DUMP      the current records of any Durus file
  durusfiles.py check FILE DUMP K   open FILE with Durus, check that it holds
                                    exactly DUMP's records byte for byte, print
                                    the next K new oids, one a line
  durusfiles.py hold FILE           open FILE for writing (taking Durus's
                                    lock), print "locked", wait for stdin EOF

DUMP files hold every current record as int4 (big-endian) length + record,
in ascending oid order.
"""
import struct
import sys

import durus.serialize
from durus.connection import Connection
from durus.file_storage import FileStorage
from durus.file_storage2 import FileStorage2
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList
from durus.utils import int8_to_str, str_to_int8


class Node(Persistent):
    pass


class ChosenShelf(FileStorage):
    """A Shelf storage handing out chosen oids first."""
    chosen = ()

    def new_oid(self):
        if self.chosen:
            oid = int8_to_str(self.chosen.pop(0))
            self.allocated_unused_oids.add(oid)
            return oid
        return FileStorage.new_oid(self)


def open_any(path, readonly=True):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"DFS20"):
        return FileStorage2(path, readonly=readonly)
    return FileStorage(path, readonly=readonly)


def dump(storage, out):
    items = sorted((str_to_int8(oid), rec) for oid, rec in storage.gen_oid_record())
    with open(out, "wb") as f:
        for oid, _ in items:
            rec = storage.load(int8_to_str(oid))
            f.write(struct.pack(">I", len(rec)))
            f.write(rec)


def populate(conn, storage, chosen_oids=None):
    root = conn.get_root()
    durus.serialize.WRITE_COMPRESSED_STATE_PICKLES = True
    for i in range(30):
        root["k%d" % i] = Node()
        root["k%d" % i].value = "x" * (i * 37)
    conn.commit()
    if chosen_oids is not None:
        chosen_oids()
    root["high"] = PersistentList([Node(), Node(), Node()])
    root["d"] = PersistentDict(a=Node(), b=Node())
    conn.commit()
    durus.serialize.WRITE_COMPRESSED_STATE_PICKLES = False
    for i in range(0, 30, 3):  # modified again: superseded versions
        root["k%d" % i].value = "changed %d" % i
    conn.commit()
    for i in range(0, 30, 2):  # unreachable from now on
        del root["k%d" % i]
    conn.commit()
    return root


def make_shelf(out, dump_path):
    storage = ChosenShelf(out)
    conn = Connection(storage)
    def chosen():
        storage.chosen = [0x2722, 0xFF, 0x80, 0x3FF]
    root = populate(conn, storage, chosen)
    storage.pack()  # holes where the unreachable objects were
    conn = Connection(storage)
    root = conn.get_root()
    for i in range(5):  # new objects fill holes, in appended transactions
        root["after%d" % i] = Node()
        conn.commit()
    root["k1"].value = "after pack"
    conn.commit()
    conn.commit()  # nothing to do: no transaction
    storage.close()
    dump(FileStorage(out, readonly=True), dump_path)


def make_appended(out, dump_path):
    storage = FileStorage(out)
    conn = Connection(storage)
    populate(conn, storage)
    storage.close()
    dump(FileStorage(out, readonly=True), dump_path)


def make_dfs20(out, dump_path):
    storage = FileStorage2(out)
    conn = Connection(storage)
    def chosen():
        storage.oid = 0x8027222600FE
    populate(conn, storage, chosen)
    storage.pack()
    conn = Connection(storage)
    root = conn.get_root()
    for i in range(3):
        root["after%d" % i] = Node()
        conn.commit()
    root["k1"].value = "after pack"
    conn.commit()
    storage.close()
    dump(FileStorage2(out, readonly=True), dump_path)


def read_dump(path):
    with open(path, "rb") as f:
        b = f.read()
    out = {}
    i = 0
    while i < len(b):
        n = struct.unpack(">I", b[i:i + 4])[0]
        rec = b[i + 4:i + 4 + n]
        out[rec[:8]] = rec
        i += 4 + n
    return out


def check(path, dump_path, k):
    want = read_dump(dump_path)
    storage = open_any(path, readonly=False)
    for oid, rec in want.items():
        got = storage.load(oid)
        if got != rec:
            raise SystemExit("oid %d: record differs" % str_to_int8(oid))
    n = 0
    for oid, rec in storage.gen_oid_record():
        n += 1
        if want.get(oid) != rec:
            raise SystemExit("oid %d: unexpected record" % str_to_int8(oid))
    if n != len(want):
        raise SystemExit("%d records, want %d" % (n, len(want)))
    for _ in range(k):
        sys.stdout.write("%d\n" % str_to_int8(storage.new_oid()))
    storage.close()


def hold(path):
    storage = open_any(path, readonly=False)
    sys.stdout.write("locked\n")
    sys.stdout.flush()
    sys.stdin.read()
    storage.close()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "shelf":
        make_shelf(sys.argv[2], sys.argv[3])
    elif cmd == "appended":
        make_appended(sys.argv[2], sys.argv[3])
    elif cmd == "dfs20":
        make_dfs20(sys.argv[2], sys.argv[3])
    elif cmd == "dump":
        dump(open_any(sys.argv[2]), sys.argv[3])
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "hold":
        hold(sys.argv[2])
    else:
        raise SystemExit(__doc__)
