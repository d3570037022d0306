"""berkeleydb_storage.ReplicatedConnection against a fake replication group.

The "group" is one Durus storage server (the reference ``durus -s``, so
that no durusbdb binary is needed: the helper is pure client logic) behind
three "sites": TCP proxies that forward to it. Killing a site closes its
listener and every connection through it, as a dead durusbdb site does;
what was committed stays in the shared server, as an acknowledged commit
stays on the new master. A site can also die the moment a commit arrives,
once it has passed a commit's data on and before the answer comes back,
which leaves that commit's outcome unknown to the client. A site that
dies when the commit command arrives, before the data, has committed
nothing: the client is told so (ConnectionLost).

The helper is the installed shim, else this checkout's
python/berkeleydb_storage/failover.py.
"""

import importlib.util
import os
import socket
import threading
import time

import pytest

from durus_server import ServerProcess, TARGET_DURUS

try:
    from berkeleydb_storage import failover
except ImportError:
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "python", "berkeleydb_storage", "failover.py")
    _spec = importlib.util.spec_from_file_location("_durusbdb_failover", _path)
    failover = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(failover)

from durus.persistent_dict import PersistentDict  # noqa: E402


class Site(object):
    """A TCP proxy to the shared server that can die like a site."""

    def __init__(self, backend):
        self.backend = backend
        self.lock = threading.Lock()
        self.socks = []
        self.die_on_commit = False
        self.refuse_commits = 0  # how many commits to answer E (as a replica without a master)
        self.muted = False
        self.alive = False
        self.port = None
        self.start()

    def start(self, port=0):
        ln = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ln.bind(("127.0.0.1", port or self.port or 0))
        ln.listen(16)
        self.listener, self.port, self.alive = ln, ln.getsockname()[1], True
        self.muted = False
        threading.Thread(target=self._accept, args=(ln,), daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self, ln):
        while True:
            try:
                client, _ = ln.accept()
            except OSError:
                return
            server = socket.create_connection(self.backend)
            with self.lock:
                if not self.alive:
                    client.close()
                    server.close()
                    return
                self.socks += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src, dst, from_client):
        commit_sent = False
        refusing = None  # the refused commit's bytes read so far
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            # A refused commit: its data (int4 length, then the records:
            # Durus's client writes them apart, so they may come in two
            # reads or more) is read whole and not passed on, the server
            # is told the client aborted (a zero length) and the client
            # gets E, as from a durusbdb replica that cannot reach a master.
            if from_client and data and (refusing is not None or (self.refuse_commits and commit_sent)):
                refusing = (refusing or b"") + data
                if len(refusing) < 4 or len(refusing) < 4 + int.from_bytes(refusing[:4], "big"):
                    continue
                refusing = None
                self.refuse_commits -= 1
                commit_sent = False
                try:
                    dst.sendall(b"\0\0\0\0")
                    src.sendall(b"E")
                except OSError:
                    return
                continue
            if from_client and self.refuse_commits and data:
                commit_sent = data[:1] == b"C"
            # Durus's client sends the commit command 'C' alone, after the
            # reply to its previous request; the next thing it sends is
            # the commit's data: the site dies once that is passed on.
            # The reply must never reach the client: the site stops
            # passing replies on before the data goes out, or a fast
            # server's 'O' could slip through before the kill.
            if from_client and self.die_on_commit and data:
                if commit_sent:
                    self.muted = True
                    dst.sendall(data)
                    self.kill()
                    return
                commit_sent = data[:1] == b"C"
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if not from_client and self.muted:
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def kill(self):
        """Die: stop listening and reset every connection."""
        with self.lock:
            self.alive = False
            socks, self.socks = self.socks, []
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (Linux)
        except OSError:
            pass
        self.listener.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def group(tmp_path):
    backend = ServerProcess(workdir=str(tmp_path), kind=TARGET_DURUS)
    backend.start()
    sites = [Site(backend.address) for _ in range(3)]
    yield sites
    for s in sites:
        if s.alive:
            s.kill()
    backend.kill()


def _set(key, value):
    def fn(connection):
        root = connection.get_root()
        root[key] = value
    return fn


def _get(db, key):
    db.connection.abort()
    return db.connection.get_root().get(key)


def test_connects_to_first_live_site(group):
    dead = Site(group[0].backend)
    dead.kill()
    db = failover.ReplicatedConnection([dead.address] + [s.address for s in group], connect_timeout=5)
    assert db.address == ("127.0.0.1", group[0].port)
    db.transact(_set("x", 1))
    assert _get(db, "x") == 1
    db.close()


def test_failover_reconnects_with_a_fresh_connection(group):
    db = failover.ReplicatedConnection([s.address for s in group], connect_timeout=5)
    db.transact(_set("answered", PersistentDict(a=1)))
    first = db.connection
    group[0].kill()
    # The next transaction notices the lost site (a load or the commit
    # fails before anything is sent), reconnects and runs again.
    db.transact(_set("after", 2))
    assert db.connection is not first
    assert db.address == ("127.0.0.1", group[1].port)
    assert db.reconnections == 1
    # The commit answered before the failover is there, through the new site.
    assert _get(db, "answered")["a"] == 1
    assert _get(db, "after") == 2
    db.close()


def test_commit_in_flight_has_unknown_outcome(group):
    db = failover.ReplicatedConnection([s.address for s in group], connect_timeout=5)
    db.transact(_set("x", 1))
    group[0].die_on_commit = True
    db.connection.get_root()["x"] = 2
    with pytest.raises(failover.CommitOutcomeUnknown) as info:
        db.commit()
    assert "unknown" in str(info.value)
    assert db.address == ("127.0.0.1", group[1].port)
    # transact never retries it: the caller decides after reading back.
    group[1].die_on_commit = True
    with pytest.raises(failover.CommitOutcomeUnknown):
        db.transact(_set("x", 3))
    assert db.address == ("127.0.0.1", group[2].port)
    assert _get(db, "x") in (1, 2, 3)  # unknown indeed: read back to know
    db.close()


def test_refused_commit_runs_again(group):
    db = failover.ReplicatedConnection([s.address for s in group], connect_timeout=5)
    db.transact(_set("x", 1))
    # A site that refuses (E) has stored nothing: commit says so, aborted.
    group[0].refuse_commits = 1
    db.connection.get_root()["x"] = 2
    with pytest.raises(failover.CommitRefused) as info:
        db.commit()
    assert "nothing was stored" in str(info.value)
    assert not db.connection.changed
    assert _get(db, "x") == 1
    # transact runs it again, on the next sites, until one takes it.
    group[0].refuse_commits = 1
    group[1].refuse_commits = 1
    db.transact(_set("x", 3))
    assert db.address == ("127.0.0.1", group[2].port)
    assert _get(db, "x") == 3
    # Refused every time: CommitRefused once the attempts are spent.
    for s in group:
        s.refuse_commits = 100
    with pytest.raises(failover.CommitRefused):
        db.transact(_set("x", 4), attempts=3)
    assert _get(db, "x") == 3
    db.close()


def test_lost_before_commit_is_connection_lost(group):
    db = failover.ReplicatedConnection([s.address for s in group], connect_timeout=5)
    db.transact(_set("x", 1))
    group[0].kill()
    with pytest.raises(failover.ConnectionLost):
        db.commit()  # nothing changed: only a sync, which fails
    assert db.connection is not None and db.address == ("127.0.0.1", group[1].port)
    # The site dies at the commit command, before the data: nothing was
    # written, and the transaction may simply run again.
    db.connection.get_root()["x"] = 2
    group[1].kill()
    with pytest.raises(failover.ConnectionLost):
        db.commit()
    assert _get(db, "x") == 1
    db.transact(_set("x", 2))
    assert _get(db, "x") == 2


def test_no_live_site(group):
    for s in group:
        s.kill()
    start = time.monotonic()
    with pytest.raises(failover.NoLiveSite) as info:
        failover.ReplicatedConnection([s.address for s in group], connect_timeout=0.5)
    assert time.monotonic() - start < 10
    assert group[0].address in str(info.value)


def test_waits_for_a_site_to_come_back(group):
    for s in group:
        s.kill()
    threading.Timer(0.3, group[2].start).start()
    db = failover.ReplicatedConnection([s.address for s in group], connect_timeout=10)
    assert db.address == ("127.0.0.1", group[2].port)
    db.close()


def test_connect_timeout_bounds_a_site_that_never_answers(group):
    """A site that takes the connection but never answers (stopped with
    SIGSTOP, or still opening its database) costs at most connect_timeout:
    the client then moves to the next site, or raises NoLiveSite. It
    waited without bound for the version reply."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)  # the kernel completes connections; nobody answers
    try:
        addr = "127.0.0.1:%d" % mute.getsockname()[1]
        for s in group:
            s.kill()
        start = time.monotonic()
        with pytest.raises(failover.NoLiveSite):
            failover.ReplicatedConnection([addr], connect_timeout=1.0)
        assert time.monotonic() - start < 5
        group[1].start()
        start = time.monotonic()
        db = failover.ReplicatedConnection([addr, group[1].address], connect_timeout=3.0)
        assert db.address == ("127.0.0.1", group[1].port)
        assert time.monotonic() - start < 5
        # Connected, the socket blocks again: a long commit is not cut.
        assert db.connection.get_storage().s.gettimeout() is None
        db.close()
    finally:
        mute.close()
