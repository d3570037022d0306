"""Server process life cycle: restart, kill -9, SIGTERM, read-only, `durus -s
--stop`, unix and abstract sockets, systemd activation, commit limit, a fresh
database's root (C2, C4, C5, C15, C33, C39, C40, C48, PROTOCOL.md 8)."""

import os
import socket
import stat
import subprocess
import time

import pytest

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ProtocolError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.utils import int8_to_str

import durus_server
from interop_util import TARGET_DURUS, TARGET_DURUSBDB, differs, is_target, poll


class Thing(Persistent):
    def __init__(self, value=None):
        self.value = value


def fill(srv, clients, n=100):
    connection = clients(srv)
    root = connection.get_root()
    root["things"] = [Thing(i) for i in range(n)]
    root["text"] = "\u00e9t\u00e9"
    connection.commit()
    storage = connection.get_storage()
    oids = [int8_to_str(0)] + [t._p_oid for t in root["things"]]
    records = {oid: storage.load(oid) for oid in oids}
    storage.close()
    return records


def check(srv, records):
    storage = ClientStorage(**srv.client_kwargs())
    try:
        for oid, record in records.items():
            assert storage.load(oid) == record
        connection = Connection(storage)
        root = connection.get_root()
        assert [t.value for t in root["things"]] == list(range(len(root["things"])))
        assert root["text"] == "\u00e9t\u00e9"
    finally:
        storage.close()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_fresh_database_root(fresh_server, clients, transport):
    """C40: on a fresh database Connection creates a PersistentDict root at oid 0."""
    srv = fresh_server(transport=transport)
    connection = clients(srv)
    root = connection.get_root()
    assert isinstance(root, PersistentDict)
    assert root._p_oid == int8_to_str(0)
    storage = clients.storage(srv)
    storage.load(int8_to_str(0))
    # C9: the first oids of a fresh database after the root are 1, 2, ...
    assert connection.get_storage().new_oid() == int8_to_str(1)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_data_survives_restart(fresh_server, clients, transport):
    srv = fresh_server(transport=transport)
    records = fill(srv, clients)
    status = srv.stop()
    assert status == 0, srv.log_tail()
    srv.start()
    check(srv, records)
    # And once more, after more commits.
    connection = clients(srv)
    connection.get_root()["after"] = Thing("after restart")
    connection.commit()
    assert srv.stop() == 0, srv.log_tail()
    srv.start()
    assert clients(srv).get_root()["after"].value == "after restart"


def test_data_survives_kill9(fresh_server, clients):
    """C37 (small): acknowledged commits survive kill -9 and restart."""
    srv = fresh_server()
    records = fill(srv, clients)
    srv.kill()
    srv.start()
    check(srv, records)


def test_sigterm_stops_cleanly(fresh_server, clients):
    srv = fresh_server()
    records = fill(srv, clients)
    status = srv.terminate()
    assert status is not None, "server did not exit within 10 s of SIGTERM"
    srv.start()
    check(srv, records)


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_durus_stop_command(fresh_server, clients, transport):
    """C15: `durus -s --stop` (Durus 4.3's own command) stops the server."""
    srv = fresh_server(transport=transport)
    records = fill(srv, clients)
    done = subprocess.run(srv.stop_command(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert done.returncode == 0, done.stdout
    assert poll(lambda: not durus_server.connectable(srv.address, 0.5), timeout=1.0), \
        "address still accepting after --stop"
    try:
        status = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        pytest.fail("server still running 10 s after durus -s --stop")
    assert status == 0, srv.log_tail()
    if transport == "unix":
        assert not os.path.exists(srv.address), "socket file left behind"
    srv.start()
    check(srv, records)


@differs(TARGET_DURUS, "C2: durusbdb creates its unix socket with mode 0600; "
                       "the reference leaves the mode to the umask")
def test_unix_socket_mode(fresh_server):
    old = os.umask(0o022)
    try:
        srv = fresh_server(transport="unix")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(srv.address).st_mode)
    assert mode & 0o077 == 0, oct(mode)


@differs(TARGET_DURUS, "C4/D15: `durus -s --address=@name` fails in Durus 4.3")
def test_abstract_socket(fresh_server, clients):
    srv = fresh_server(transport="abstract")
    connection = clients(srv)
    connection.get_root()["x"] = 1
    connection.commit()
    assert clients(srv).get_root()["x"] == 1


@differs(TARGET_DURUS, "D4: Durus 4.3's read-only server crashes at the first commit")
def test_readonly_server(fresh_server, clients):
    """C48: loads work on a read-only server; a commit raises ProtocolError."""
    srv = fresh_server()
    records = fill(srv, clients)
    assert srv.stop() == 0, srv.log_tail()
    srv.readonly = True
    srv.start()
    check(srv, records)

    connection = clients(srv)
    root = connection.get_root()
    root["new"] = Thing("not stored")
    with pytest.raises(ProtocolError):
        connection.commit()
    # PROTOCOL.md 4.1: after E the application aborts; the connection stays usable.
    connection.abort()
    assert "new" not in connection.get_root()
    storage = connection.get_storage()
    for oid, record in records.items():
        assert storage.load(oid) == record
    # P answers O and does nothing (C48).
    connection.pack()
    # Nothing changed, for a new client too; the server is still up.
    assert srv.running()
    check(srv, records)


def _snapshot(path):
    """{relative path: bytes} of every regular file under path (or the file)."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {"": f.read()}
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(full).st_mode):
                with open(full, "rb") as f:
                    out[os.path.relpath(full, path)] = f.read()
    return out


def test_readonly_writes_nothing(fresh_server, clients):
    """PROTOCOL.md 8: a read-only server opens the database without writing anything."""
    srv = fresh_server()
    records = fill(srv, clients)
    assert srv.stop() == 0, srv.log_tail()
    before = _snapshot(srv.dbpath)
    srv.readonly = True
    srv.start()
    check(srv, records)
    storage = clients.storage(srv)
    storage.new_oid()
    storage.sync()
    list(storage.bulk_load(list(records)))
    assert srv.stop() == 0, srv.log_tail()
    after = _snapshot(srv.dbpath)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    assert not (added or removed or changed), (
        "read-only server wrote to the database: added %s, removed %s, changed %s"
        % (added, removed, changed))


@differs(TARGET_DURUS, "D9/C33: the reference has no commit size limit")
def test_commit_limit(fresh_server, clients):
    """C33: a commit above --max-commit -> E (ProtocolError); the connection stays usable."""
    extra = ["--max-commit=1MiB"] if is_target(TARGET_DURUSBDB) else []
    srv = fresh_server(extra_args=extra)
    connection = clients(srv)
    root = connection.get_root()
    root["small"] = Thing("small")
    connection.commit()
    root["big"] = Thing(os.urandom(2 * 1024 * 1024))
    with pytest.raises(ProtocolError):
        connection.commit()
    connection.abort()
    assert connection.get_root()["small"].value == "small"
    assert "big" not in connection.get_root()
    assert srv.running()


@differs(TARGET_DURUS, "A5/D11: the reference keeps oid 0 allocated until restart "
                       "when the first client disconnects before committing the root")
def test_root_released_after_disconnect(fresh_server, clients):
    """C39: a first client takes oids 0..31 and leaves; the next one creates the root."""
    srv = fresh_server()
    first = ClientStorage(**srv.client_kwargs())
    assert first.new_oid() == int8_to_str(0)
    first.close()
    time.sleep(0.3)             # let the server see the disconnect
    connection = clients(srv)   # Connection asserts its first new oid is ROOT_OID
    root = connection.get_root()
    assert root._p_oid == int8_to_str(0)
    root["ok"] = True
    connection.commit()


def _activated(srv, listen_fds, sock):
    """Start srv's command with an inherited listening socket on fd 3."""
    fd = sock.fileno()

    def preexec():
        os.dup2(fd, 3)
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDS"] = str(listen_fds)

    srv._choose_address()             # a --port nobody listens on
    log = open(srv.log_path, "ab")
    try:
        return subprocess.Popen(srv.command(), cwd=srv.workdir, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, pass_fds=(3,),
                                preexec_fn=preexec)
    finally:
        log.close()


def test_systemd_socket_activation(fresh_server):
    """C5: LISTEN_PID = the server's pid and LISTEN_FDS=1: it serves on fd 3, not --port."""
    srv = fresh_server(start=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(40)
    port = sock.getsockname()[1]
    proc = _activated(srv, 1, sock)
    srv.proc = proc
    durus_server._live.add(proc)
    sock.close()
    try:
        storage = ClientStorage(host="127.0.0.1", port=port)
        connection = Connection(storage)
        connection.get_root()["activated"] = True
        connection.commit()
        storage.close()
        assert not durus_server.connectable(srv.address, 0.5), "also listening on --port"
    finally:
        durus_server.send_quit(("127.0.0.1", port))
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, srv.log_tail()


def test_systemd_two_sockets_refused(fresh_server):
    """C5: LISTEN_FDS=2 stops start-up with a message."""
    srv = fresh_server(start=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(40)
    proc = _activated(srv, 2, sock)
    durus_server._live.add(proc)
    sock.close()
    try:
        status = proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("server still running 10 s after LISTEN_FDS=2")
    assert status != 0
    assert srv.log_tail().strip(), "no message"
