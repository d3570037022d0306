"""Commits and oids through ClientStorage's own API (begin/store/end/new_oid):
C9-C11, C21, C24, C28-C32, C41, C46, C47, C3, C10.

Refusals that the reference answers by crashing (PROTOCOL.md section 10) run
on a fresh server of their own."""

import os
import socket
import subprocess
import time

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import DurusKeyError, ProtocolError, ReadConflictError, WriteConflictError
from durus.persistent import Persistent
from durus.serialize import pack_record
from durus.utils import int8_to_str, str_to_int8

import durus_server
from interop_util import TARGET_DURUS, TARGET_DURUSBDB, differs, is_target, poll


class Thing(Persistent):
    def __init__(self, value=None):
        self.value = value


def commit_records(storage, records):
    """One transaction of raw records {oid: record}; returns what end() returns."""
    storage.begin()
    for oid, record in records.items():
        storage.store(oid, record)
    return storage.end(lambda oids: None)


def ensure_root(srv):
    c = Connection(ClientStorage(**srv.client_kwargs()))
    c.get_root()
    c.get_storage().close()


def test_raw_records_round_trip(server, clients):
    """C11: any record is returned byte for byte, pickle or not (C58)."""
    ensure_root(server)
    storage = clients.storage(server)
    oids = [storage.new_oid() for _ in range(6)]
    records = {
        oids[0]: pack_record(oids[0], b"ok", b""),
        oids[1]: pack_record(oids[1], b"", b""),
        oids[2]: pack_record(oids[2], os.urandom(70000), b""),
        oids[3]: pack_record(oids[3], b"\x80\x02" + os.urandom(100), oids[0] + oids[1]),
        oids[4]: pack_record(oids[4], b"refs twice", oids[0] + oids[0] + oids[4]),
        oids[5]: pack_record(oids[5], b"x" * 3, b""),
    }
    assert commit_records(storage, records) is None
    other = clients.storage(server)
    for oid, record in records.items():
        assert other.load(oid) == record
    assert list(other.bulk_load(list(records))) == list(records.values())


def test_empty_transaction(server, clients):
    """C24: a commit with no records gets no reply; the connection stays in step."""
    storage = clients.storage(server)
    storage.begin()
    storage.end(lambda oids: None)
    assert isinstance(storage.sync(), list)
    assert storage.new_oid()
    ensure_root(server)
    storage.load(int8_to_str(0))


def test_phase1_empties_invalid_set(server, clients, key):
    """C21: commit phase 1 returns and empties the invalid set even with len 0."""
    a = clients(server)
    a.get_root()[key] = t = Thing(0)
    a.commit()
    sb = clients.storage(server)
    sb.sync()
    t.value = 1
    a.commit()
    told = []
    sb.begin()
    sb.end(told.extend)
    assert t._p_oid in told
    assert sb.sync() == []


def test_refs_to_object_in_same_transaction(server, clients):
    """C32 (second half): refs to an oid stored later in the same commit are fine."""
    ensure_root(server)
    storage = clients.storage(server)
    a, b = storage.new_oid(), storage.new_oid()
    records = {a: pack_record(a, b"refers to b", b), b: pack_record(b, b"b", b"")}
    assert commit_records(storage, records) is None
    assert storage.load(a) == records[a]


def test_unreferenced_record_kept_through_grace(server, clients):
    """C41: a record committed with no referrer is still there 2 s later, without P."""
    ensure_root(server)
    storage = clients.storage(server)
    oid = storage.new_oid()
    record = pack_record(oid, b"lonely", b"")
    commit_records(storage, {oid: record})
    time.sleep(2.0)
    assert clients.storage(server).load(oid) == record


def test_oid_allocation(fresh_server, clients):
    """C9/C10: a fresh database hands out 0, 1, 2...; M 255 works; no oid twice."""
    srv = fresh_server()
    a = clients.storage(srv)
    b = clients.storage(srv)
    first = [str_to_int8(a.new_oid()) for _ in range(32)]
    assert first == list(range(32))
    b.oid_pool_size = 255
    many = [str_to_int8(b.new_oid()) for _ in range(255)]
    assert len(set(many)) == 255
    assert many == sorted(many)
    assert not set(first) & set(many)
    a.oid_pool_size = 1
    assert str_to_int8(a.new_oid()) not in set(first) | set(many)


@differs(TARGET_DURUS, "A1: the reference hands out again, after a restart, oids that were "
                       "handed out but never committed", raises=AssertionError)
def test_no_oid_handed_out_twice_across_restart(fresh_server, clients):
    """C10: no oid is handed out again after a restart."""
    srv = fresh_server()
    ensure_root(srv)
    a = ClientStorage(**srv.client_kwargs())
    before = {a.new_oid() for _ in range(32)}
    a.close()
    assert srv.stop() == 0, srv.log_tail()
    srv.start()
    b = clients.storage(srv)
    after = {b.new_oid() for _ in range(32)}
    assert not before & after


@differs(TARGET_DURUS, "D1: committing an oid never handed out crashes the reference server")
def test_commit_of_unallocated_oid_refused(fresh_server, clients):
    """C29: an oid far above anything handed out -> E (ProtocolError); nothing changes."""
    srv = fresh_server()
    ensure_root(srv)
    storage = clients.storage(srv)
    far = int8_to_str(2 ** 40)
    with pytest.raises(ProtocolError):
        commit_records(storage, {far: pack_record(far, b"far", b"")})
    with pytest.raises(DurusKeyError):
        clients.storage(srv).load(far)
    # The server keeps running and allocation is not affected.
    fresh = clients.storage(srv)
    assert str_to_int8(fresh.new_oid()) < 2 ** 20
    assert srv.running()


@differs(TARGET_DURUS, "5.5 rule 7: the reference closes the connection without a status")
def test_commit_of_other_connections_unused_oid_refused(fresh_server, clients):
    """C30: an oid held in another open connection's unused set -> E; after it closes -> O."""
    srv = fresh_server()
    ensure_root(srv)
    holder = ClientStorage(**srv.client_kwargs())
    oid = holder.new_oid()
    thief = clients.storage(srv)
    record = pack_record(oid, b"stolen", b"")
    with pytest.raises(ProtocolError):
        commit_records(thief, {oid: record})
    holder.close()

    def committed():
        try:
            commit_records(thief, {oid: record})
            return True
        except ProtocolError:
            return False

    # The server sees the close asynchronously.
    assert poll(committed, timeout=3.0)
    assert clients.storage(srv).load(oid) == record


@differs(TARGET_DURUS, "5.5 rule 10: the reference stores dangling references")
def test_dangling_reference_refused(fresh_server, clients):
    """C32: a record whose refs name an oid without a record -> I (WriteConflictError)."""
    srv = fresh_server()
    ensure_root(srv)
    storage = clients.storage(srv)
    a = storage.new_oid()
    missing = storage.new_oid()
    with pytest.raises(WriteConflictError):
        commit_records(storage, {a: pack_record(a, b"dangling", missing)})
    with pytest.raises(DurusKeyError):
        clients.storage(srv).load(a)


def test_root_commit_without_oids(fresh_server, clients):
    """C31: committing ROOT_OID on a fresh database without asking for oids -> O."""
    srv = fresh_server()
    storage = clients.storage(srv)
    root = int8_to_str(0)
    record = pack_record(root, b"root", b"")
    assert commit_records(storage, {root: record}) is None
    assert clients.storage(srv).load(root) == record


def test_gcbytes_starts_collection(fresh_server, clients):
    """C47: with --gcbytes=N a full collection starts on its own after N committed bytes."""
    srv = fresh_server(extra_args=["--gcbytes=20000"])
    c = clients(srv)
    root = c.get_root()
    root["doomed"] = Thing("doomed")
    c.commit()
    doomed = root["doomed"]._p_oid
    del root["doomed"]
    c.commit()
    storage = c.get_storage()

    def gone():
        try:
            storage.load(doomed)
        except ReadConflictError:
            storage.sync()
            return False
        except DurusKeyError:
            return True
        return False

    assert not gone()
    for i in range(10):
        root["filler%d" % i] = Thing(os.urandom(5000))
        c.commit()
    assert poll(gone, timeout=5.0), "no collection after 50 KB committed with --gcbytes=20000"


@differs(TARGET_DURUS, "G6: only durusbdb has a reference-count collector (Durus removes "
                       "objects only in a pack)")
def test_refcount_collector(fresh_server, clients):
    """C46: an object that lost its last reference goes after the grace period, and
    its oid reaches every open connection's invalid set, without any pack."""
    extra = ["--gc-grace=1s"] if is_target(TARGET_DURUSBDB) else []
    srv = fresh_server(extra_args=extra)
    c = clients(srv)
    root = c.get_root()
    root["doomed"] = Thing("doomed")
    c.commit()
    doomed = root["doomed"]._p_oid
    watcher = clients.storage(srv)
    watcher.sync()
    del root["doomed"]
    c.commit()
    told = set()
    assert poll(lambda: told.update(watcher.sync()) or doomed in told, timeout=8.0)
    with pytest.raises(DurusKeyError):
        watcher.load(doomed)


# -- unix socket paths (C3) ---------------------------------------------------

def test_stale_socket_file_replaced(fresh_server, clients):
    srv = fresh_server(transport="unix", start=False)
    srv.address = os.path.join(srv.workdir, "s.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(srv.address)          # a socket file nobody listens on
    s.close()
    assert os.path.exists(srv.address)
    srv.start()
    clients(srv).get_root()


def test_live_socket_refused(fresh_server, clients):
    """C3: a socket path another server listens on makes start-up fail."""
    first = fresh_server(transport="unix")
    second = fresh_server(transport="unix", start=False)
    second.address = first.address
    try:
        done = subprocess.run(second.command(), cwd=second.workdir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("second server on a live socket path still running after 10 s")
    output = done.stdout.decode("utf-8", "replace")
    assert done.returncode != 0, output
    if is_target(TARGET_DURUSBDB):
        assert first.address in output, output     # the message names the path
    # The first server still serves, on its socket.
    assert os.path.exists(first.address)
    clients(first).get_root()


@differs(TARGET_DURUS, "3.1: the reference removes any zero-size file at the socket path")
def test_regular_file_at_socket_path_kept(fresh_server):
    srv = fresh_server(transport="unix", start=False)
    srv._choose_address = lambda: None
    srv.address = os.path.join(srv.workdir, "s.sock")
    open(srv.address, "w").close()
    with pytest.raises(durus_server.ServerError):
        srv.start(timeout=5)
    assert os.path.isfile(srv.address)
