"""Fixtures for the Durus interoperability suite.

The tests use only Durus's public client API. The server under test is:

* an already running server, if DURUS_ADDRESS or DURUS_PORT (and DURUS_HOST)
  is set: tests that must control the server process are then skipped;
* otherwise a server process started by these fixtures: durusbdb
  (DURUSBDB_BIN, default <repo>/bin/durusbdb, fresh temp directory) or, with
  DURUSBDB_TARGET=durus or ``--target=durus``, the reference ``durus -s``.

Other settings: DURUSBDB_TRANSPORTS (default "tcp,unix": the shared
per-module servers), DURUSBDB_SERVE_ARGS (extra ``durusbdb serve`` flags),
DURUSBDB_TRACE=1 (Durus's client wire trace in failing tests' output),
DURUSBDB_SOCKET_TIMEOUT / DURUSBDB_TEST_TIMEOUT (bounds, seconds).

Tests for behaviour where PROTOCOL.md says durusbdb deliberately differs from
Durus 4.3 ([differs]) carry an explicit strict xfail for the target that does
not have the behaviour (see ``differs``).
"""

import faulthandler
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import durus_server  # noqa: E402
from durus_server import ServerProcess, TARGET_DURUS, TARGET_DURUSBDB  # noqa: E402

from durus.client_storage import ClientStorage  # noqa: E402
from durus.connection import Connection  # noqa: E402

# A hung server must fail a test, not hang the run: every client socket
# created by ClientStorage inherits this timeout.
SOCKET_TIMEOUT = float(os.environ.get("DURUSBDB_SOCKET_TIMEOUT", "30"))
# Hard per-test bound: dump every thread's stack and exit.
TEST_TIMEOUT = float(os.environ.get("DURUSBDB_TEST_TIMEOUT", "300"))


def pytest_addoption(parser):
    parser.addoption("--target", action="store", default=None,
                     choices=[TARGET_DURUSBDB, TARGET_DURUS],
                     help="server under test (default: env DURUSBDB_TARGET or durusbdb)")
    parser.addoption("--transports", action="store", default=None,
                     help="comma-separated transports for the shared servers "
                          "(tcp,unix; default env DURUSBDB_TRANSPORTS or tcp,unix)")


def pytest_configure(config):
    chosen = config.getoption("--target")
    if chosen:
        os.environ["DURUSBDB_TARGET"] = chosen
    socket.setdefaulttimeout(SOCKET_TIMEOUT)
    if os.environ.get("DURUSBDB_TRACE"):
        # Durus's own wire trace: every read()/write() of the client, shown
        # for failing tests (pytest captures it).
        import durus.utils
        durus.utils.TRACE = True
    config.addinivalue_line("markers", "managed: needs to start/stop its own server process")


def pytest_report_header(config):
    ext = durus_server.external_address()
    if ext:
        return "durus interop: external server %r" % (ext,)
    tgt = durus_server.target()
    extra = durus_server.durusbdb_bin() if tgt == TARGET_DURUSBDB else "durus -s (Durus 4.3)"
    return "durus interop: target %s (%s)" % (tgt, extra)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def _transports(config):
    value = config.getoption("--transports") or os.environ.get("DURUSBDB_TRANSPORTS") or "tcp,unix"
    return [t.strip() for t in value.split(",") if t.strip()]


def pytest_generate_tests(metafunc):
    if "server" in metafunc.fixturenames:
        if durus_server.external_address():
            params = ["external"]
        else:
            params = _transports(metafunc.config)
        metafunc.parametrize("server", params, indirect=True, scope="module")


class ExternalServer(object):
    """Stand-in for ServerProcess when DURUS_ADDRESS/DURUS_PORT name a running server."""

    kind = "external"

    def __init__(self, address):
        self.address = address
        self.transport = "tcp" if isinstance(address, tuple) else "unix"

    def client_kwargs(self):
        if isinstance(self.address, tuple):
            return {"host": self.address[0], "port": self.address[1]}
        return {"address": self.address}

    def log_tail(self, n=4000):
        return "(external server)"


@pytest.fixture(scope="module")
def server(request):
    """One server per test module (and transport), shared by its tests.

    Tests sharing it keep their objects under their own root key."""
    ext = durus_server.external_address()
    if ext:
        yield ExternalServer(ext)
        return
    srv = ServerProcess(transport=request.param)
    try:
        srv.start()
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def fresh_server(request):
    """A server of its own for one test (fresh database); killed at teardown.

    Skipped when the suite runs against an external server."""
    if durus_server.external_address():
        pytest.skip("needs to control its own server process (external server given)")
    made = []

    def make(transport="tcp", readonly=False, extra_args=(), start=True):
        srv = ServerProcess(transport=transport, readonly=readonly, extra_args=extra_args)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        srv.cleanup()


@pytest.fixture
def clients(request):
    """Factory: clients(server) -> Connection; every storage is closed at teardown."""
    opened = []

    def connect(srv, cache_size=100000, **kwargs):
        storage = ClientStorage(**srv.client_kwargs())
        opened.append(storage)
        return Connection(storage, cache_size=cache_size, **kwargs)

    def storage(srv):
        st = ClientStorage(**srv.client_kwargs())
        opened.append(st)
        return st

    connect.storage = storage
    yield connect
    for st in opened:
        try:
            st.close()
        except Exception:
            pass


@pytest.fixture
def key(request):
    """A root key of this test's own (tests share the module's server)."""
    return request.node.name

