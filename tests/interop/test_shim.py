"""berkeleydb_storage.BerkeleyDBStorage: the original package's local usage on
Python 3 over a private durusbdb server (python/ in this repository).

Against durusbdb (default) the shim runs the real binary (DURUSBDB_BIN).
With DURUSBDB_TARGET=durus it runs fake_durusbdb.py, a stand-in built on
Durus 4.3's own server, so that the shim's process handling is checked
against the reference too.
"""

import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc

import pytest

import durus_server
from interop_util import TARGET_DURUS, differs, is_target, poll

berkeleydb_storage = pytest.importorskip(
    "berkeleydb_storage", reason="install the shim first: pip install -e python/")

from berkeleydb_storage import (  # noqa: E402
    BerkeleyDBStorage, BinaryNotFoundError, MigrationError)
from durus.btree import BTree  # noqa: E402
from durus.connection import Connection  # noqa: E402
from durus.error import ProtocolError  # noqa: E402
from durus.file_storage import FileStorage  # noqa: E402
from durus.persistent import Persistent  # noqa: E402
from durus.persistent_dict import PersistentDict  # noqa: E402
from durus.persistent_list import PersistentList  # noqa: E402
from durus.serialize import pack_record  # noqa: E402
from durus.utils import int8_to_str  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Item(Persistent):
    def __init__(self, value=None):
        self.value = value


@pytest.fixture(scope="module")
def shim_bin(tmp_path_factory):
    """The binary the shim runs: durusbdb, or the Durus-based stand-in."""
    if durus_server.external_address():
        pytest.skip("the shim starts its own server (external server given)")
    if is_target(TARGET_DURUS):
        wrapper = tmp_path_factory.mktemp("fakebin") / "durusbdb"
        wrapper.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (
            sys.executable, os.path.join(HERE, "fake_durusbdb.py")))
        wrapper.chmod(0o755)
        return str(wrapper)
    binary = durus_server.durusbdb_bin()
    if not os.path.exists(binary):
        pytest.fail("durusbdb binary not found at %s" % binary)
    return binary


@pytest.fixture
def env_bin(shim_bin, monkeypatch):
    monkeypatch.setenv("DURUSBDB_BIN", shim_bin)
    return shim_bin


@pytest.fixture
def dbdir(tmp_path):
    d = tmp_path / "db"
    d.mkdir()
    return str(d)


def pid_gone(pid):
    """True if pid no longer runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def run_python(code, cwd, env_bin, timeout=120):
    env = dict(os.environ, DURUSBDB_BIN=env_bin)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


TEST3 = """
    from durus.btree import BTree
    from durus.connection import Connection
    from berkeleydb_storage import BerkeleyDBStorage

    connection = Connection(BerkeleyDBStorage("db"))

    root=connection.get_root()
    root[0]=BTree()
    connection.commit()

    for i in range(65536) :
      root[0][i]=0
    connection.commit()

    for i in range(0,65536,2) :
      del root[0][i]
    connection.commit()

    print(len(root[0]))
"""

REOPEN = """
    from durus.connection import Connection
    from berkeleydb_storage import BerkeleyDBStorage
    connection = Connection(BerkeleyDBStorage("db"))
    tree = connection.get_root()[0]
    assert list(tree.keys()) == list(range(1, 65536, 2))
    print(len(tree))
"""


def test_test3_local(tmp_path, shim_bin):
    """The seed's test3.py, ported to Python 3 (print(), range), unchanged otherwise."""
    (tmp_path / "db").mkdir()
    done = run_python(TEST3, str(tmp_path), shim_bin)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "32768"
    # Reopen in a new process: the data is there.
    done = run_python(REOPEN, str(tmp_path), shim_bin)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "32768"


def test_reopen_in_process(dbdir, env_bin):
    storage = BerkeleyDBStorage(dbdir)
    connection = Connection(storage)
    root = connection.get_root()
    root["d"] = PersistentDict(text="\u00e9t\u00e9", data=b"\x00\xff")
    root["l"] = PersistentList(Item(i) for i in range(100))
    connection.commit()
    pid = storage.server_pid
    storage.close()
    assert pid_gone(pid)

    storage = BerkeleyDBStorage(dbdir)
    try:
        assert storage.server_pid != pid
        root = Connection(storage).get_root()
        assert root["d"]["text"] == "\u00e9t\u00e9"
        assert root["d"]["data"] == b"\x00\xff"
        assert [i.value for i in root["l"]] == list(range(100))
    finally:
        storage.close()


def test_path_must_be_existing_directory(tmp_path, env_bin):
    with pytest.raises(FileNotFoundError) as info:
        BerkeleyDBStorage(str(tmp_path / "missing"))
    assert "existing directory" in str(info.value)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError):
        BerkeleyDBStorage(str(afile))


def test_unknown_option(dbdir, env_bin):
    with pytest.raises(TypeError) as info:
        BerkeleyDBStorage(dbdir, no_such_option=1)
    assert "no_such_option" in str(info.value)
    with pytest.raises(ValueError):
        BerkeleyDBStorage(dbdir, durability="sometimes")
    with pytest.raises(TypeError):
        BerkeleyDBStorage(dbdir, cache_size="big")


def test_options_map_to_serve_flags():
    flags = berkeleydb_storage._serve_flags(dict(
        durability="nosync", cache_size=128 << 20, gc_grace=0.5, verify_refs=True,
        gcbytes=1000))
    assert flags == ["--cache-size=134217728", "--durability=nosync", "--gc-grace=0.5s",
                     "--gcbytes=1000", "--verify-refs"]
    assert berkeleydb_storage._serve_flags(dict(verify_refs=False)) == []


def _commit_x_and_close(storage):
    """Commit root["x"] = Item(1) through storage, then close it."""
    try:
        connection = Connection(storage)
        connection.get_root()["x"] = Item(1)
        connection.commit()
    finally:
        storage.close()


def test_options_reach_the_server(dbdir, env_bin):
    """Every option the shim maps is accepted by the server it starts."""
    storage = BerkeleyDBStorage(dbdir, durability="write-nosync", cache_size=32 << 20,
                                gc_grace=120, gcbytes=10 ** 9, verify_refs=True,
                                max_commit=1 << 28, commit_lease=5, logginglevel=30)
    _commit_x_and_close(storage)
    storage = BerkeleyDBStorage(dbdir, async_log_write=True)
    try:
        assert Connection(storage).get_root()["x"].value == 1
    finally:
        storage.close()


def test_binary_not_found(dbdir, monkeypatch):
    monkeypatch.setenv("DURUSBDB_BIN", os.path.join(dbdir, "no-such-durusbdb"))
    with pytest.raises(BinaryNotFoundError) as info:
        BerkeleyDBStorage(dbdir)
    assert isinstance(info.value, FileNotFoundError)
    assert "DURUSBDB_BIN" in str(info.value)
    monkeypatch.delenv("DURUSBDB_BIN")
    monkeypatch.setenv("PATH", dbdir)
    with pytest.raises(BinaryNotFoundError):
        BerkeleyDBStorage(dbdir)


def test_one_server_per_directory_in_process(dbdir, env_bin):
    a = BerkeleyDBStorage(dbdir)
    b = BerkeleyDBStorage(dbdir)
    try:
        assert a.server_pid == b.server_pid
        ca, cb = Connection(a), Connection(b)
        ca.get_root()["x"] = 1
        ca.commit()
        cb.abort()
        assert cb.get_root()["x"] == 1
        pid = a.server_pid
        a.close()
        a.close()                      # twice is fine
        assert not pid_gone(pid)       # b still uses it
        cb.get_root()["y"] = 2
        cb.commit()
    finally:
        a.close()
        b.close()
    assert pid_gone(pid)


def test_server_gone_after_close(dbdir, env_bin):
    storage = BerkeleyDBStorage(dbdir)
    pid = storage.server_pid
    assert not pid_gone(pid)
    Connection(storage).get_root()
    storage.close()
    assert pid_gone(pid)
    # No socket file left behind.
    assert not os.path.exists(os.path.join(dbdir, "durusbdb.sock"))


CHILD = """
    import os, signal, sys, time
    from durus.connection import Connection
    from berkeleydb_storage import BerkeleyDBStorage
    storage = BerkeleyDBStorage("db")
    connection = Connection(storage)
    connection.get_root()["pid"] = os.getpid()
    connection.commit()
    print(storage.server_pid, flush=True)
    how = sys.argv[1]
    if how == "exit":
        sys.exit(0)
    if how == "_exit":
        os._exit(3)
    time.sleep(60)       # waits for SIGTERM / SIGKILL
"""


@pytest.mark.parametrize("how", ["exit", "sigterm", "_exit", "sigkill"])
def test_server_gone_after_process_ends(tmp_path, shim_bin, how):
    (tmp_path / "db").mkdir()
    env = dict(os.environ, DURUSBDB_BIN=shim_bin)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(CHILD), how],
                             cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = child.stdout.readline().decode().strip()
        assert line.isdigit(), child.stderr.read().decode() if child.poll() is not None else line
        server_pid = int(line)
        if how in ("sigterm", "sigkill"):       # the child is still sleeping
            assert not pid_gone(server_pid)
        if how == "sigterm":
            child.send_signal(signal.SIGTERM)
        elif how == "sigkill":
            child.kill()
        child.wait(30)
        assert poll(lambda: pid_gone(server_pid), timeout=10.0), \
            "server %d still running 10 s after its parent ended (%s)" % (server_pid, how)
        # It shut down cleanly: no socket file left in the directory.
        assert not os.path.exists(str(tmp_path / "db" / "durusbdb.sock"))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    # The data committed before is there for the next user.
    storage = BerkeleyDBStorage(str(tmp_path / "db"), binary=shim_bin)
    try:
        assert Connection(storage).get_root()["pid"] == child.pid
    finally:
        storage.close()


def make_filestorage(path):
    """A Durus 4.3 FileStorage with several transactions, superseded versions and a pack."""
    storage = FileStorage(path)
    connection = Connection(storage)
    root = connection.get_root()
    root["tree"] = BTree()
    for i in range(2000):
        root["tree"][i] = Item(i)
    root["text"] = "\u65e5\u672c\u8a9e"
    root["blob"] = os.urandom(100000)
    connection.commit()
    for i in range(0, 2000, 3):
        root["tree"][i].value = -i
    root["gone"] = Item("soon unreachable")
    connection.commit()
    del root["gone"]
    connection.commit()
    connection.pack()
    root["after_pack"] = PersistentList([Item("x")])
    connection.commit()
    storage.close()


def test_migrate_from_filestorage(tmp_path, dbdir, env_bin):
    src = str(tmp_path / "source.durus")
    make_filestorage(src)
    source = FileStorage(src, readonly=True)
    expected = dict(source.gen_oid_record())
    assert len(expected) > 2000

    destination = BerkeleyDBStorage(dbdir)
    try:
        count = destination.migrate(FileStorage(src, readonly=True).gen_oid_record())
        assert count == len(expected)
        for oid, record in expected.items():
            assert destination.load(oid) == record
        # And through a Connection.
        root = Connection(destination).get_root()
        assert len(root["tree"]) == 2000
        assert root["tree"][3].value == -3 and root["tree"][4].value == 4
        assert root["text"] == "\u65e5\u672c\u8a9e"
        assert root["after_pack"][0].value == "x"
        assert "gone" not in root
    finally:
        destination.close()
    source.close()

    # Still all there after a restart of the private server.
    again = BerkeleyDBStorage(dbdir)
    try:
        for oid, record in expected.items():
            assert again.load(oid) == record
    finally:
        again.close()


def _synthetic(n, size):
    """Root (oid 0) referencing n records of size bytes; records only, no pairs."""
    refs = b"".join(int8_to_str(i) for i in range(1, n + 1))
    yield pack_record(int8_to_str(0), b"root", refs)
    for i in range(1, n + 1):
        body = (b"%08d" % i) * (size // 8)
        yield pack_record(int8_to_str(i), body, b"")


def test_migrate_streams_records(dbdir, env_bin):
    """Plain records (not pairs), 400 x 64 KiB: the shim holds only one at a time."""
    n, size = 400, 64 * 1024
    destination = BerkeleyDBStorage(dbdir)
    try:
        tracemalloc.start()
        try:
            count = destination.migrate(_synthetic(n, size))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert count == n + 1
        assert peak < 8 * 1024 * 1024, "migrate() held %d bytes" % peak
        for record in _synthetic(n, size):
            assert destination.load(record[:8]) == record
    finally:
        destination.close()


def test_migrate_failure_reports_tool_message(dbdir, env_bin):
    destination = BerkeleyDBStorage(dbdir)
    try:
        bad = [pack_record(int8_to_str(0), b"root", b""), b"short"]
        with pytest.raises(MigrationError) as info:
            destination.migrate(bad)
        assert "durusbdb migrate failed" in str(info.value)
        message = str(info.value).split(":", 1)[1].strip()
        assert message and message != "(no message)"
        # The storage is usable again afterwards (the server was restarted).
        Connection(destination).get_root()
    finally:
        destination.close()


def test_migrate_rejects_mismatched_pair(dbdir, env_bin):
    destination = BerkeleyDBStorage(dbdir)
    try:
        record = pack_record(int8_to_str(0), b"root", b"")
        with pytest.raises(ValueError):
            destination.migrate([(int8_to_str(5), record)])
        Connection(destination).get_root()
    finally:
        destination.close()


def _write_kept(dbdir):
    storage = BerkeleyDBStorage(dbdir)
    connection = Connection(storage)
    connection.get_root()["kept"] = Item("kept")
    connection.commit()
    storage.close()


def test_readonly_loads(dbdir, env_bin):
    _write_kept(dbdir)
    ro = BerkeleyDBStorage(dbdir, readonly=True)
    try:
        assert Connection(ro).get_root()["kept"].value == "kept"
    finally:
        ro.close()


@differs(TARGET_DURUS, "D4: Durus 4.3's read-only server crashes at the first commit")
def test_readonly_commit_refused(dbdir, env_bin):
    _write_kept(dbdir)
    ro = BerkeleyDBStorage(dbdir, readonly=True)
    try:
        connection = Connection(ro)
        root = connection.get_root()
        root["new"] = 1
        with pytest.raises(ProtocolError):
            connection.commit()
        connection.abort()
        assert connection.get_root()["kept"].value == "kept"
        assert "new" not in connection.get_root()
    finally:
        ro.close()


# Berkeley DB metadata page (db_page.h DBMETA): magic at offset 12, page size
# at offset 20, in the creating machine's byte order.
_BDB_MAGIC = {0x053162: "btree", 0x061561: "hash"}


def _bdb_meta(path):
    import struct
    with open(path, "rb") as f:
        head = f.read(24)
    for order in "<>":
        magic, _version, pagesize = struct.unpack(order + "III", head[12:24])
        if magic in _BDB_MAGIC:
            return _BDB_MAGIC[magic], pagesize
    raise AssertionError("%s: not a Berkeley DB btree or hash file (magic %r)" % (path, head[12:16]))


@differs(TARGET_DURUS, "the stand-in keeps a Durus file: no Berkeley DB objects.db",
         raises=FileNotFoundError)
def test_creation_options_take_effect(dbdir, env_bin):
    """access= and page_size= shape the objects.db the shim creates in an
    empty directory (it was created as a 16 KiB btree before serve saw them)."""
    storage = BerkeleyDBStorage(dbdir, access="hash", page_size=4096)
    _commit_x_and_close(storage)
    assert _bdb_meta(os.path.join(dbdir, "objects.db")) == ("hash", 4096)
    import json
    stats = subprocess.run([env_bin, "stats", "--dir", dbdir, "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, check=True)
    assert json.loads(stats.stdout)["access"] == "hash"
    # The defaults still give a btree, and the data is there on reopening.
    storage = BerkeleyDBStorage(dbdir)
    try:
        assert Connection(storage).get_root()["x"].value == 1
    finally:
        storage.close()
    other = os.path.join(os.path.dirname(dbdir), "other")
    os.mkdir(other)
    BerkeleyDBStorage(other).close()
    assert _bdb_meta(os.path.join(other, "objects.db"))[0] == "btree"


READONLY_OTHER_USER = """
    import os, sys
    from durus.connection import Connection
    from berkeleydb_storage import BerkeleyDBStorage
    assert not os.access(sys.argv[1], os.W_OK), "the test needs a directory it cannot write"
    storage = BerkeleyDBStorage(sys.argv[1], readonly=True)
    try:
        print(Connection(storage).get_root()["x"].value)
    finally:
        storage.close()
"""


def test_readonly_directory_not_writable(env_bin):
    """readonly=True works on a directory this process may read but not write
    (the server's socket goes to a private temporary directory): as root, the
    reader runs as nobody on a root-owned database."""
    import pwd
    import shutil
    import tempfile
    as_root = os.geteuid() == 0
    # Under /tmp: the reader must reach it (pytest's tmp_path is 0700).
    top = tempfile.mkdtemp(prefix="durusbdb-ro-", dir="/tmp" if as_root else None)
    try:
        os.chmod(top, 0o755)
        db = os.path.join(top, "db")
        os.mkdir(db)
        storage = BerkeleyDBStorage(db)
        try:
            connection = Connection(storage)
            connection.get_root()["x"] = Item(41)
            connection.commit()
        finally:
            storage.close()
        kwargs = {}
        if as_root:
            for dirpath, dirnames, filenames in os.walk(db):
                os.chmod(dirpath, 0o755)
                for name in filenames:
                    os.chmod(os.path.join(dirpath, name), 0o644)
            nobody = pwd.getpwnam("nobody")
            kwargs = dict(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
        else:
            os.chmod(db, 0o555)
        binary = os.path.join(top, "durusbdb")   # where the reader can run it
        shutil.copy2(env_bin, binary)
        env = dict(os.environ, DURUSBDB_BIN=binary, TMPDIR="/tmp", HOME="/tmp",
                   PYTHONPATH=os.pathsep.join([os.path.dirname(berkeleydb_storage.__path__[0]),
                                               HERE]))
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(READONLY_OTHER_USER), db],
                              cwd="/", env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=120, **kwargs)
        assert done.returncode == 0, done.stderr.decode()
        assert done.stdout.decode().strip() == "41"
        assert not os.path.exists(os.path.join(db, "durusbdb.sock"))
    finally:
        os.chmod(top, 0o755)
        if os.path.isdir(os.path.join(top, "db")):
            os.chmod(os.path.join(top, "db"), 0o755)
        shutil.rmtree(top, ignore_errors=True)


ORPHAN_OWNER = """
    import time
    from durus.connection import Connection
    from berkeleydb_storage import BerkeleyDBStorage
    storage = BerkeleyDBStorage("db")
    connection = Connection(storage)
    connection.get_root()["n"] = 1
    connection.commit()
    print(storage.server_pid, flush=True)
    time.sleep(120)      # killed with SIGKILL
"""


def _orphan_of_killed_app(tmp_path, shim_bin):
    """A killed application's private server, stopped (SIGSTOP) before the
    kill so that it is still there, orphaned, when the next one opens."""
    (tmp_path / "db").mkdir()
    env = dict(os.environ, DURUSBDB_BIN=shim_bin)
    app = subprocess.Popen([sys.executable, "-c", textwrap.dedent(ORPHAN_OWNER)],
                           cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = app.stdout.readline().decode().strip()
        assert line.isdigit(), app.stderr.read().decode() if app.poll() is not None else line
        server_pid = int(line)
        os.kill(server_pid, signal.SIGSTOP)
    finally:
        app.kill()
        app.wait(30)
    app.stdout.close()
    app.stderr.close()
    assert poll(lambda: berkeleydb_storage._orphaned_servers(str((tmp_path / "db").resolve())),
                timeout=10.0) == [(server_pid, app.pid)]
    return server_pid


def test_reopen_waits_for_orphaned_server(tmp_path, shim_bin):
    """Reopening right after the application was killed with -9: the dead
    application's private server, still shutting down, holds the directory
    (its socket accepts). The shim waits for it to go instead of refusing the
    directory as "already served by another process"."""
    import threading
    server_pid = _orphan_of_killed_app(tmp_path, shim_bin)
    # The orphan resumes a moment later: its shutdown takes that long.
    resume = threading.Timer(1.0, os.kill, (server_pid, signal.SIGCONT))
    resume.start()
    try:
        storage = BerkeleyDBStorage(str(tmp_path / "db"), binary=shim_bin, start_timeout=60)
        try:
            assert pid_gone(server_pid)
            assert Connection(storage).get_root()["n"] == 1
        finally:
            storage.close()
    finally:
        resume.cancel()
        if not pid_gone(server_pid):
            os.kill(server_pid, signal.SIGCONT)
        assert poll(lambda: pid_gone(server_pid), timeout=30.0)


def test_orphaned_server_not_called_a_live_peer(tmp_path, shim_bin):
    """An orphan still there after start_timeout: the error names it as the
    server of an ended process, not as another process serving the directory."""
    server_pid = _orphan_of_killed_app(tmp_path, shim_bin)
    try:
        with pytest.raises(berkeleydb_storage.ServerStartError) as info:
            BerkeleyDBStorage(str(tmp_path / "db"), binary=shim_bin, start_timeout=0.5)
        message = str(info.value)
        assert "already served by another process" not in message
        assert "owner process has ended" in message and str(server_pid) in message
    finally:
        os.kill(server_pid, signal.SIGCONT)
    assert poll(lambda: pid_gone(server_pid), timeout=30.0)
    BerkeleyDBStorage(str(tmp_path / "db"), binary=shim_bin).close()


@pytest.mark.parametrize("variable", ["DURUSBDB_READONLY", "DURUSBDB_DURABILITY", "DURUSBDB_CONFIG"])
def test_durusbdb_environment_not_passed_on(tmp_path, dbdir, env_bin, monkeypatch, variable):
    """DURUSBDB_* variables (meant for an operator's durusbdb) do not reach the
    private server: they overrode the shim's own flags (a read-only server,
    nosync commits)."""
    config = tmp_path / "durusbdb.conf"
    config.write_text("readonly = true\ndurability = nosync\n")
    value = {"DURUSBDB_READONLY": "true", "DURUSBDB_DURABILITY": "nosync",
             "DURUSBDB_CONFIG": str(config)}[variable]
    monkeypatch.setenv(variable, value)
    log = tmp_path / "serve.log"
    storage = BerkeleyDBStorage(dbdir, logfile=str(log), logginglevel=20)
    try:
        connection = Connection(storage)
        connection.get_root()["x"] = Item(2)
        connection.commit()       # ProtocolError from a read-only server
    finally:
        storage.close()
    storage = BerkeleyDBStorage(dbdir)
    try:
        assert Connection(storage).get_root()["x"].value == 2
    finally:
        storage.close()
    if not is_target(TARGET_DURUS):    # the stand-in logs no settings
        text = log.read_text()
        assert "durability=sync" in text and "durability=nosync" not in text, text


@pytest.mark.parametrize("flags", [[], ["--repair"], pytest.param(["--readonly"], marks=differs(
    TARGET_DURUS, "D4: Durus 4.3's read-only server crashes at the first commit",
    raises=AssertionError))])
def test_durus_client_cli(tmp_path, dbdir, env_bin, flags):
    """Durus's own `durus -c --file DIR --storage-class
    berkeleydb_storage.BerkeleyDBStorage` works: it passes readonly= and
    repair= (repair was an unexpected keyword)."""
    durus = os.path.join(os.path.dirname(sys.executable), "durus")
    assert os.path.exists(durus), durus
    storage = BerkeleyDBStorage(dbdir)
    try:
        connection = Connection(storage)
        connection.get_root()["before"] = 1
        connection.commit()
    finally:
        storage.close()
    script = ('print("seen", root["before"])\n'
              'root["after"] = 2\n'
              'try:\n'
              '    connection.commit(); print("committed")\n'
              'except Exception as e:\n'
              '    print("refused", type(e).__name__)\n\n')
    env = dict(os.environ, DURUSBDB_BIN=env_bin, HOME=str(tmp_path),
               PYTHONPATH=os.pathsep.join([os.path.dirname(berkeleydb_storage.__path__[0])]
                                          + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([durus, "-c", "--file", dbdir, "--storage-class",
                           "berkeleydb_storage.BerkeleyDBStorage"] + flags,
                          input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, cwd=str(tmp_path), timeout=120)
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert "seen 1" in out, out
    assert ("refused ProtocolError" if "--readonly" in flags else "committed") in out, out


def test_closed_storage_raises_oserror(dbdir, env_bin):
    """Requests on a closed BerkeleyDBStorage raise an OSError (as on a closed
    durus ClientStorage: EBADF), not AttributeError ('NoneType' has no 'send')."""
    import errno
    storage = BerkeleyDBStorage(dbdir)
    connection = Connection(storage)
    connection.get_root()["x"] = Item(1)
    connection.commit()
    storage.close()
    connection.get_root()["y"] = Item(2)
    with pytest.raises(OSError) as info:
        connection.commit()
    assert isinstance(info.value, berkeleydb_storage.StorageClosedError)
    assert info.value.errno == errno.EBADF
    # (new_oid() answers from the oids fetched before, with no request.)
    for request in (connection.abort, lambda: storage.load(int8_to_str(0)), storage.sync):
        with pytest.raises(OSError):
            request()
    storage.close()    # a second close is harmless
    assert storage.server_pid is None


def test_create_with_binary_without_parent_pid(tmp_path, dbdir, env_bin):
    """A durusbdb that does not know --parent-pid still creates and serves a
    new database (the creating serve drops the flag as the serving one does)."""
    wrapper = tmp_path / "old-durusbdb"
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --parent-pid=*)\n'
                       '  echo "unknown flag: --parent-pid" >&2; exit 2;; esac; done\n'
                       'exec "%s" "$@"\n' % env_bin)
    wrapper.chmod(0o755)
    storage = BerkeleyDBStorage(dbdir, binary=str(wrapper))
    try:
        connection = Connection(storage)
        connection.get_root()["x"] = Item(3)
        connection.commit()
        assert not any(a.startswith("--parent-pid") for a in storage._server.command())
    finally:
        storage.close()
