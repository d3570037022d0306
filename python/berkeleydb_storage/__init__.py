"""BerkeleyDBStorage: the durus-berkeleydbstorage API on Python 3, over durusbdb.

The original package (2006-2007, Python 2) gave Durus a Berkeley DB storage
used either locally::

    from durus.connection import Connection
    from berkeleydb_storage import BerkeleyDBStorage
    connection = Connection(BerkeleyDBStorage("db"))

or behind a Durus storage server. durusbdb is that storage server, written in
Go. This module keeps the local usage working unchanged: BerkeleyDBStorage is
a durus.client_storage.ClientStorage that starts a private ``durusbdb serve``
on a unix socket inside the database directory, connects to it, and stops it
when the storage is closed or the Python process ends (atexit; and the server
watches this process with ``--parent-pid`` and, on Linux, gets SIGTERM when
this process dies).

PATH must be an existing directory: the database files are created inside
it, as in the original.

The durusbdb binary is $DURUSBDB_BIN, else ``durusbdb`` on $PATH.
"""

import atexit
import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from durus.client_storage import ClientStorage

from berkeleydb_storage.failover import (CommitOutcomeUnknown, CommitRefused, ConnectionLost,
                                         FailoverError, NoLiveSite, ReplicatedConnection)
from berkeleydb_storage.tls import TLSClientStorage

__all__ = [
    "BerkeleyDBStorage",
    "BerkeleyDBStorageError",
    "BinaryNotFoundError",
    "ServerStartError",
    "MigrationError",
    "StorageClosedError",
    "TLSClientStorage",
    "ReplicatedConnection",
    "FailoverError",
    "ConnectionLost",
    "CommitOutcomeUnknown",
    "CommitRefused",
    "NoLiveSite",
    "OPTIONS",
    "find_binary",
]

__version__ = "0.1.0"

SOCKET_NAME = "durusbdb.sock"
# sun_path holds 108 bytes on Linux, 104 on BSDs; keep a margin.
_MAX_SOCKET_PATH = 100
DEFAULT_START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class BerkeleyDBStorageError(Exception):
    """Base class of this module's errors."""


class BinaryNotFoundError(BerkeleyDBStorageError, FileNotFoundError):
    """The durusbdb binary was not found ($DURUSBDB_BIN or PATH)."""


class ServerStartError(BerkeleyDBStorageError):
    """The private durusbdb server did not start."""


class MigrationError(BerkeleyDBStorageError):
    """``durusbdb migrate`` failed; the message is the tool's own."""


class StorageClosedError(BerkeleyDBStorageError, OSError):
    """A request on a closed BerkeleyDBStorage (an OSError, errno EBADF, as a
    request on a closed durus ClientStorage)."""


class _ClosedSocket(object):
    """The socket of a BerkeleyDBStorage without a connection: every use
    raises StorageClosedError."""

    def __getattr__(self, name):
        raise StorageClosedError(errno.EBADF, "BerkeleyDBStorage is closed")

    def __repr__(self):
        return "<closed BerkeleyDBStorage socket>"


_CLOSED = _ClosedSocket()


# ---------------------------------------------------------------------------
# Options -> `durusbdb serve` flags

def _duration(seconds):
    """Seconds (number) -> Go duration string ("60s", "0.5s")."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError("expected a number of seconds, got %r" % (seconds,))
    text = ("%.6f" % float(seconds)).rstrip("0").rstrip(".")
    return (text or "0") + "s"


def _int(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer, got %r" % (value,))
    return str(value)


def _choice(*allowed):
    def convert(value):
        if value not in allowed:
            raise ValueError("expected one of %s, got %r" % (", ".join(allowed), value))
        return value
    return convert


def _flag_if(flag):
    """A boolean option that adds a bare flag when true."""
    return ("bool", flag)


# option name -> (flag, converter) or ("bool", flag). Only flags that
# `durusbdb serve` has; anything else is a TypeError.
OPTIONS = {
    # durability of commits: "sync" (default), "write-nosync", "nosync"
    "durability": ("--durability", _choice("sync", "write-nosync", "nosync")),
    # cache size in bytes (default 64 MiB)
    "cache_size": ("--cache-size", _int),
    # backend of a new database: "bdb" or "leveldb" (default: bdb if compiled in)
    "backend": ("--backend", _choice("bdb", "leveldb")),
    # seconds an unreferenced object is kept before the collector may remove it
    "gc_grace": ("--gc-grace", _duration),
    # start a full collection after this many committed bytes (as durus -s)
    "gcbytes": ("--gcbytes", _int),
    # refuse records whose pickled references differ from their refs field
    "verify_refs": _flag_if("--verify-refs"),
    # largest commit accepted, bytes
    "max_commit": ("--max-commit", _int),
    # commit token lease, seconds
    "commit_lease": ("--commit-lease", _duration),
    # Durus logging level of the server (as durus -s --logginglevel)
    "logginglevel": ("--logginglevel", _int),
    # server log file (default: a private temporary file)
    "logfile": ("--logfile", str),
    # the original's constructor options that durusbdb keeps:
    # check every garbage candidate before the collector deletes it
    "validate_garbage": _flag_if("--validate-garbage"),
    # access method of objects.db at creation: "btree" (default) or "hash"
    "access": ("--access", _choice("btree", "hash")),
    # page size of objects.db at creation, bytes
    "page_size": ("--page-size", _int),
    # reference-count collector: "continuous", "idle" or "manual"
    "gc_mode": ("--gc-mode", _choice("continuous", "idle", "manual")),
    # checkpoint every this many seconds (negative: never by time)
    "checkpoint_interval": ("--checkpoint-interval", _duration),
    # keep log files after checkpoints (catastrophic recovery, incremental backups)
    "keep_logs": _flag_if("--keep-logs"),
}

# Options handled on the Python side only.
_LOCAL_OPTIONS = ("start_timeout", "binary", "do_recover", "async_log_write", "repair")


def _serve_flags(options):
    """Validate options (unknown -> TypeError) and return the serve flags."""
    flags = []
    for name in sorted(options):
        value = options[name]
        key = name
        if key not in OPTIONS:
            raise TypeError("BerkeleyDBStorage() got an unexpected keyword argument %r "
                            "(known: %s)" % (name, ", ".join(sorted(
                                set(OPTIONS) | set(_LOCAL_OPTIONS)))))
        spec = OPTIONS[key]
        if spec[0] == "bool":
            if not isinstance(value, bool):
                raise TypeError("option %s expects True or False, got %r" % (name, value))
            if value:
                flags.append(spec[1])
        else:
            flag, convert = spec
            flags.append("%s=%s" % (flag, convert(value)))
    return flags


def find_binary(binary=None):
    """The durusbdb executable: binary, else $DURUSBDB_BIN, else `durusbdb` on $PATH."""
    candidate = binary or os.environ.get("DURUSBDB_BIN")
    if candidate:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
        raise BinaryNotFoundError(
            errno.ENOENT, "durusbdb binary %r (from %s) is missing or not executable"
            % (candidate, "binary=" if binary else "$DURUSBDB_BIN"), candidate)
    found = shutil.which("durusbdb")
    if found:
        return found
    raise BinaryNotFoundError(
        errno.ENOENT, "durusbdb binary not found: set $DURUSBDB_BIN or put durusbdb on $PATH "
        "(build it with `go build -tags bdb -o bin/durusbdb ./cmd/durusbdb`)", "durusbdb")


# ---------------------------------------------------------------------------
# Private servers, one per database directory and process

def _connectable(address, timeout=1.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address.replace("@", "\0") if address.startswith("@") else address)
    except (OSError, socket.timeout):
        return False
    try:
        s.sendall(b".")   # as ClientStorage.close(): ends the connection
    except OSError:
        pass
    s.close()
    return True


def _answers(address, timeout):
    """True once the durusbdb at address answers a protocol request.

    A connection alone says little: the server binds its socket before it
    opens (or creates) the database, and the kernel queues connections
    meanwhile; it answers the version request only when it serves."""
    from durus.storage_server import StorageServer
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(address)
        s.sendall(b"V" + StorageServer.protocol)
        answer = b""
        while len(answer) < 4:
            chunk = s.recv(4 - len(answer))
            if not chunk:
                return False
            answer += chunk
        s.sendall(b".")   # as ClientStorage.close(): ends the connection
        return True
    except (OSError, socket.timeout):
        return False
    finally:
        s.close()


def _stop_process(proc):
    """SIGTERM (graceful shutdown), bounded wait, then SIGKILL; the status."""
    if proc is not None and proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        except OSError:
            pass
    return None if proc is None else proc.returncode


def _pid_gone(pid):
    """True if pid no longer runs (a zombie counts as gone: it holds nothing)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass
    return False


def _orphaned_servers(directory):
    """[(pid, owner pid)] of the private servers of directory (``serve
    --dir=DIRECTORY ... --parent-pid=OWNER``, by any process) whose owner has
    ended: they stop by themselves (parent-death signal, --parent-pid) but
    may still hold the directory for a moment. Linux /proc only."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    want = os.fsencode("--dir=" + directory)
    for name in names:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
            if b"serve" not in argv or want not in argv:
                continue
            owner = [a for a in argv if a.startswith(b"--parent-pid=")]
            if not owner:
                continue
            owner = int(owner[-1].split(b"=", 1)[1])
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if fields[0] != b"Z" and int(fields[1]) != owner:   # reparented: its owner is gone
            found.append((int(name), owner))
    return found


def _wait_gone(servers, deadline):
    """Wait until the (pid, owner) servers have exited or deadline passes; the ones left."""
    while True:
        servers = [item for item in servers if not _pid_gone(item[0])]
        if not servers or time.monotonic() >= deadline:
            return servers
        time.sleep(0.02)


def _child_env():
    """This process's environment without DURUSBDB_* variables.

    durusbdb reads every flag from DURUSBDB_<FLAG> (and a settings file from
    DURUSBDB_CONFIG): variables meant for an operator's server would
    override the options of the private one (DURUSBDB_READONLY=true making
    it read-only, DURUSBDB_DURABILITY, ...)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("DURUSBDB_")}


def _pdeathsig_preexec():
    """preexec_fn: SIGTERM to the server when this process dies (Linux only).

    PR_SET_PDEATHSIG fires when the forking *thread* ends, so it is used only
    from the main thread; --parent-pid covers the other cases."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    sig = int(signal.SIGTERM)

    def preexec():
        prctl(1, sig, 0, 0, 0)   # PR_SET_PDEATHSIG

    return preexec


# Files whose presence means the directory already holds a database
# (FORMAT.md: meta.db for Berkeley DB, CURRENT for LevelDB).
_DATABASE_MARKERS = ("meta.db", "CURRENT")
# Binaries found not to know --parent-pid.
_without_parent_pid = set()


class _PrivateServer(object):
    """A ``durusbdb serve`` process owned by this Python process."""

    def __init__(self, directory, binary, flags, readonly, start_timeout):
        self.directory = directory
        self.binary = binary
        self.flags = flags
        self.readonly = readonly
        self.start_timeout = start_timeout
        self.owner_pid = os.getpid()
        self.refcount = 0
        self.proc = None
        self.tempdir = None
        self.log_reader = None
        self.own_log = not any(f.startswith("--logfile=") for f in flags)
        self.parent_pid_flag = binary not in _without_parent_pid
        path = os.path.join(directory, SOCKET_NAME)
        # The socket a server of this directory binds inside it: a live one
        # means the directory is served already.
        self.dir_address = path
        if (len(path.encode(sys.getfilesystemencoding(), "surrogateescape")) > _MAX_SOCKET_PATH
                or (readonly and not os.access(directory, os.W_OK))):
            # Too long for a unix socket address, or a read-only open of a
            # directory this process may not write: a private directory instead.
            self.tempdir = tempfile.mkdtemp(prefix="durusbdb-")
            path = os.path.join(self.tempdir, "s.sock")
        self.address = path

    def command(self, address=None, mode=None):
        cmd = [self.binary, "serve", "--dir=%s" % self.directory,
               "--address=%s" % (address or self.address)]
        if not any(f.startswith("--logginglevel=") for f in self.flags):
            cmd.append("--logginglevel=30")   # warnings and errors only: a private log
        cmd.append(mode or ("--readonly" if self.readonly else "--create"))
        if self.parent_pid_flag:
            cmd.append("--parent-pid=%d" % os.getpid())
        return cmd + self.flags

    def start(self):
        left = _wait_gone(_orphaned_servers(self.directory),
                          time.monotonic() + self.start_timeout)
        if left:
            raise ServerStartError(
                "%s is still held by %s: a private durusbdb server whose owner "
                "process has ended, still shutting down after %.0f s (it stops by "
                "itself; try again, or stop it: kill -TERM %s)" % (
                    self.directory,
                    ", ".join("pid %d (owner pid %d)" % item for item in left),
                    self.start_timeout, " ".join(str(pid) for pid, _ in left)))
        if _connectable(self.dir_address, 0.5):
            raise ServerStartError(
                "%s is already served by another process (its socket %s accepts "
                "connections); local access is exclusive: connect to it with "
                "durus.client_storage.ClientStorage(address=%r) instead"
                % (self.directory, self.dir_address, self.dir_address))
        self._remove_lonely_stale_socket()
        if not self.readonly:
            self._create_database()
        for attempt in range(2):
            self._spawn()
            failure = self._wait_ready()
            if failure is None:
                return
            if self._without_parent_pid(failure):
                # A durusbdb without --parent-pid: rely on PR_SET_PDEATHSIG and atexit.
                self._drop_log()
                continue
            break
        raise ServerStartError("durusbdb serve did not start for %s: %s" % (self.directory, failure))

    def _create_database(self):
        """Create the database of an empty directory before serving it.

        The server binds its socket before it opens the database, and a new
        database needs an empty directory, so a socket inside the directory
        would make it fail. A first ``durusbdb serve --create`` with every
        option (the creation ones --backend, --access, --page-size among
        them) and its socket in a private temporary directory creates the
        database; it is stopped once it answers a request."""
        if any(os.path.exists(os.path.join(self.directory, name)) for name in _DATABASE_MARKERS):
            return
        for attempt in range(2):
            failure = self._create_once()
            if failure is None:
                return
            if self._without_parent_pid(failure):
                continue
            break
        raise ServerStartError("cannot create the database in %s: durusbdb serve --create %s"
                               % (self.directory, failure))

    def _without_parent_pid(self, failure):
        """True, and --parent-pid dropped from now on, if failure is a durusbdb
        without --parent-pid refusing it (then PR_SET_PDEATHSIG and atexit
        remain)."""
        if (self.parent_pid_flag and "parent-pid" in failure
                and ("not defined" in failure or "unknown" in failure.lower())):
            self.parent_pid_flag = False
            _without_parent_pid.add(self.binary)
            return True
        return False

    def _create_once(self):
        """One creating serve; None when it answered, else what failed."""
        tempdir = tempfile.mkdtemp(prefix="durusbdb-create-")
        address = os.path.join(tempdir, "s.sock")
        out = tempfile.TemporaryFile()
        proc = None
        try:
            try:
                proc = subprocess.Popen(self.command(address, "--create"), stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, close_fds=True,
                                        env=_child_env(), start_new_session=True,
                                        preexec_fn=_pdeathsig_preexec())
            except OSError as e:
                return "cannot run %s: %s" % (self.binary, e)
            failure = None
            deadline = time.monotonic() + self.start_timeout
            while True:
                if proc.poll() is not None:
                    failure = "exited with status %s" % proc.returncode
                    break
                if _answers(address, min(1.0, max(0.1, deadline - time.monotonic()))):
                    break
                if time.monotonic() >= deadline:
                    failure = "no answer on %s after %.0f s" % (address, self.start_timeout)
                    break
                time.sleep(0.02)
            status = _stop_process(proc)
            if failure is None and status not in (0, -signal.SIGTERM):
                failure = "stopped with status %s" % status
            if failure is None:
                return None
            out.seek(0)
            message = out.read()[-2000:].decode("utf-8", "replace").strip()
            return "%s: %s" % (failure, message or "(no output)")
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
            shutil.rmtree(tempdir, ignore_errors=True)

    def _remove_lonely_stale_socket(self):
        # A socket left by a server that died before creating the database
        # would make the directory look non-empty (FORMAT.md detection).
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        lonely = os.path.join(self.directory, SOCKET_NAME)
        if names == [SOCKET_NAME] and not _connectable(lonely, 0.5):
            try:
                os.unlink(lonely)
            except OSError:
                pass

    def _drop_log(self):
        if self.log_reader is not None:
            self.log_reader.close()
            self.log_reader = None

    def _spawn(self):
        # The server writes to an unlinked temporary file: nothing is left
        # behind however this process ends, and log_tail() reads it back
        # through this process's own descriptor for error messages.
        self._drop_log()
        if self.own_log:
            fd, path = tempfile.mkstemp(prefix="durusbdb-serve-", suffix=".log")
            os.close(fd)
            try:
                # Separate open files: the server's appends, ours reads.
                log = open(os.open(path, os.O_WRONLY | os.O_APPEND), "wb")
                self.log_reader = open(path, "rb")
            finally:
                os.unlink(path)
        else:
            log = open(os.devnull, "wb")
        try:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                close_fds=True, env=_child_env(), start_new_session=True, preexec_fn=_pdeathsig_preexec())
        except OSError as e:
            raise ServerStartError("cannot run %s: %s" % (self.binary, e))
        finally:
            log.close()

    def _wait_ready(self):
        """None when the server accepts, else a description of the failure."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with status %s: %s" % (self.proc.returncode, self.log_tail())
            if _connectable(self.address, 0.5):
                return None
            time.sleep(0.02)
        self.stop()
        return "not accepting on %s after %.0f s: %s" % (
            self.address, self.start_timeout, self.log_tail())

    def log_tail(self, n=2000):
        if self.log_reader is None:
            return "(see the server log file)" if not self.own_log else "(no log)"
        try:
            self.log_reader.seek(0, 2)
            size = self.log_reader.tell()
            self.log_reader.seek(max(0, size - n))
            text = self.log_reader.read().decode("utf-8", "replace").strip()
        except OSError:
            return "(no log)"
        return text or "(no output)"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM (graceful shutdown), bounded wait, then SIGKILL."""
        return _stop_process(self.proc)

    def cleanup(self):
        self.stop()
        self._drop_log()
        if self.tempdir:
            shutil.rmtree(self.tempdir, ignore_errors=True)


_lock = threading.RLock()
_servers = {}   # realpath of the directory -> _PrivateServer


def _acquire(directory, binary, flags, readonly, start_timeout):
    with _lock:
        server = _servers.get(directory)
        if server is not None and (server.owner_pid != os.getpid() or not server.running()):
            # Inherited through fork, or died: not ours to use.
            if server.owner_pid == os.getpid():
                server.cleanup()
            del _servers[directory]
            server = None
        if server is None:
            server = _PrivateServer(directory, binary, flags, readonly, start_timeout)
            try:
                server.start()
            except BaseException:
                server.cleanup()
                raise
            _servers[directory] = server
        elif server.readonly != readonly or server.flags != flags:
            raise ValueError(
                "%s is already open in this process with other settings "
                "(readonly=%s, flags %s); close it first" % (
                    directory, server.readonly, " ".join(server.flags) or "none"))
        server.refcount += 1
        return server


def _release(server):
    with _lock:
        server.refcount -= 1
        if server.refcount <= 0:
            if _servers.get(server.directory) is server:
                del _servers[server.directory]
            server.cleanup()


@atexit.register
def _stop_all_at_exit():
    with _lock:
        for directory, server in list(_servers.items()):
            if server.owner_pid == os.getpid():
                server.cleanup()
            del _servers[directory]


# ---------------------------------------------------------------------------

class BerkeleyDBStorage(ClientStorage):
    """A Durus storage in the directory path, served by a private durusbdb.

    BerkeleyDBStorage(path, readonly=False, **options)

    path      an existing directory; the database is created inside it.
    readonly  open without writing anything; commits raise ProtocolError.
    options   settings of the server (see OPTIONS), e.g. durability="nosync",
              cache_size=256 << 20, gc_grace=60, verify_refs=True;
              start_timeout (seconds to wait for the server, default 30) and
              binary (path of durusbdb) are handled here. An unknown option
              raises TypeError.

    Several BerkeleyDBStorage objects for one directory in one process share
    one server (each is its own client connection); the server stops when
    the last one is closed, and at interpreter exit.
    """

    def __init__(self, path, readonly=False, **options):
        self.path = path
        self._server = None
        self.s = _CLOSED
        path_str = os.fspath(path)
        if not os.path.exists(path_str):
            raise FileNotFoundError(
                errno.ENOENT, "BerkeleyDBStorage: the path must be an existing directory "
                "(the database files are created inside it)", path_str)
        if not os.path.isdir(path_str):
            raise NotADirectoryError(
                errno.ENOTDIR, "BerkeleyDBStorage: the path must be a directory "
                "(the database files are created inside it)", path_str)
        start_timeout = float(options.pop("start_timeout", DEFAULT_START_TIMEOUT))
        binary = options.pop("binary", None)
        do_recover = options.pop("do_recover", True)
        if not do_recover:
            # durusbdb always runs recovery on open (FORMAT.md section 1).
            raise ValueError("do_recover=False is not supported: durusbdb always recovers on open")
        # Durus's own tools (durus -c/-s --file DIR --storage-class ...) pass
        # repair=; as serve's --repair, it does nothing: durusbdb recovers on
        # every open, and a database it cannot recover is refused, not truncated.
        options.pop("repair", None)
        if options.pop("async_log_write", False):
            options.setdefault("durability", "write-nosync")
        flags = _serve_flags(options)
        self.directory = os.path.realpath(path_str)
        self.readonly = bool(readonly)
        self._binary = find_binary(binary)
        self._server = _acquire(self.directory, self._binary, flags, self.readonly, start_timeout)
        try:
            ClientStorage.__init__(self, address=self._server.address)
        except BaseException:
            server, self._server = self._server, None
            _release(server)
            raise

    def __str__(self):
        return "BerkeleyDBStorage(%r)" % (self.path,)

    @property
    def server_pid(self):
        """Process id of the private server (None once closed)."""
        server = self._server
        if server is None or server.proc is None:
            return None
        return server.proc.pid

    def close(self):
        """Close the connection and stop the private server if it is the last user."""
        if self.s is not _CLOSED:
            try:
                ClientStorage.close(self)
            except OSError:
                pass
            self.s = _CLOSED
        server, self._server = self._server, None
        if server is not None:
            _release(server)

    def __del__(self):
        # Best effort only; atexit and the server's parent watch are the guarantees.
        try:
            if getattr(self, "_server", None) is not None and self._server.owner_pid == os.getpid():
                self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def migrate(self, iterable, force=False):
        """Import records into this database without holding them in memory.

        iterable yields records (bytes, oid first) or (oid, record) pairs,
        as durus.file_storage.FileStorage(...).gen_oid_record() does. The
        private server is stopped, ``durusbdb migrate --stdin --dir PATH``
        reads the records as (int4 big-endian length, record) frames, and the
        server is started again. Returns the number of records sent. Raises
        MigrationError with the tool's message if it fails.
        """
        if self.readonly:
            raise BerkeleyDBStorageError("migrate() on a read-only BerkeleyDBStorage")
        server = self._server
        if server is None:
            raise BerkeleyDBStorageError("migrate() on a closed BerkeleyDBStorage")
        with _lock:
            if server.refcount != 1:
                raise BerkeleyDBStorageError(
                    "migrate(): %d other BerkeleyDBStorage objects in this process use %s; "
                    "close them first" % (server.refcount - 1, self.directory))
            try:
                ClientStorage.close(self)
            except OSError:
                pass
            self.s = _CLOSED
            server.stop()
            try:
                count = self._run_migrate(iterable, force)
            finally:
                server.start()
                ClientStorage.__init__(self, address=server.address)
        return count

    def _run_migrate(self, iterable, force):
        cmd = [self._binary, "migrate", "--stdin", "--dir=%s" % self.directory]
        if force:
            cmd.append("--force")
        out = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                    close_fds=True, env=_child_env(), bufsize=1 << 20, preexec_fn=_pdeathsig_preexec())
        except OSError as e:
            out.close()
            raise MigrationError("cannot run %s: %s" % (self._binary, e))
        count = 0
        pack = struct.Struct(">I").pack
        broken = False
        try:
            try:
                for item in iterable:
                    record = _record_of(item, count)
                    proc.stdin.write(pack(len(record)))
                    proc.stdin.write(record)
                    count += 1
                proc.stdin.close()
            except BrokenPipeError:
                broken = True
            status = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
            out.seek(0)
            message = out.read().decode("utf-8", "replace").strip()
            out.close()
        if status != 0 or broken:
            raise MigrationError("durusbdb migrate failed (status %s) after %d records: %s"
                                 % (status, count, message or "(no message)"))
        return count


def _record_of(item, index):
    """The record bytes of one migrate() item: a record or an (oid, record) pair."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, (tuple, list)) and len(item) == 2:
        oid, record = item
        record = bytes(record)
        if bytes(oid) != record[:8]:
            raise ValueError("migrate(): item %d: oid %r does not match the record's oid %r"
                             % (index, bytes(oid), record[:8]))
        return record
    raise TypeError("migrate(): item %d is %r; expected a record (bytes) or an (oid, record) pair"
                    % (index, type(item).__name__))
