"""Start, stop and reach a Durus storage server for the interop tests.

One class, ServerProcess, runs either durusbdb (``durusbdb serve``) or the
reference Durus 4.3 server (``durus -s``) on 127.0.0.1 or on a unix socket,
with the same command-line flags, so that the same tests run against both.

Settings come from the environment:

DURUSBDB_TARGET       "durusbdb" (default) or "durus" (the reference server)
DURUSBDB_BIN          the durusbdb binary (default: <repo>/bin/durusbdb)
DURUSBDB_SERVE_ARGS   extra arguments for ``durusbdb serve`` (split on blanks)
DURUSBDB_START_TIMEOUT seconds to wait for a server to accept (default 10)

Every wait is bounded and every process started here is killed when the
ServerProcess is stopped, when the Python process exits normally, and (on
Linux) when the Python process dies (PR_SET_PDEATHSIG).
"""

import atexit
import ctypes
import errno
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BIN = os.path.join(REPO, "bin", "durusbdb")

TARGET_DURUSBDB = "durusbdb"
TARGET_DURUS = "durus"

STOP_TIMEOUT = 10.0


def target():
    """The server implementation under test: "durusbdb" or "durus"."""
    value = os.environ.get("DURUSBDB_TARGET", TARGET_DURUSBDB).strip().lower()
    if value in ("durus", "reference", "ref"):
        return TARGET_DURUS
    if value in ("durusbdb", ""):
        return TARGET_DURUSBDB
    raise ValueError("DURUSBDB_TARGET must be 'durusbdb' or 'durus', not %r" % value)


def durusbdb_bin():
    """Path of the durusbdb binary (env DURUSBDB_BIN or <repo>/bin/durusbdb)."""
    return os.environ.get("DURUSBDB_BIN") or DEFAULT_BIN


def start_timeout():
    return float(os.environ.get("DURUSBDB_START_TIMEOUT", "10"))


def free_port():
    """An ephemeral TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def connectable(address, timeout=1.0):
    """True if a stream connection to address (tuple, path or @name) succeeds."""
    if isinstance(address, tuple):
        family, target_addr = socket.AF_INET, address
    else:
        family, target_addr = socket.AF_UNIX, address.replace("@", "\0")
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(target_addr)
    except (OSError, socket.timeout):
        return False
    else:
        try:
            # Like Durus's close(): an unknown command byte ends the connection.
            s.sendall(b".")
        except OSError:
            pass
        return True
    finally:
        s.close()


def wait_until(predicate, timeout, interval=0.05):
    """Poll predicate until it is true or timeout seconds passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _pdeathsig_preexec():
    """preexec_fn for Popen: the child gets SIGKILL when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    PR_SET_PDEATHSIG = 1
    sig = int(signal.SIGKILL)
    if threading.current_thread() is not threading.main_thread():
        # PDEATHSIG fires when the forking *thread* exits; only use it from
        # the main thread, which lives as long as the process.
        return None

    def preexec():
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


_live = set()


def _kill_all_at_exit():
    for proc in list(_live):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(5)
            except Exception:
                pass


atexit.register(_kill_all_at_exit)


class ServerError(Exception):
    """A server did not start, stop or behave as a process should."""


class ServerProcess(object):
    """One storage server process on a database kept in workdir.

    transport: "tcp" (127.0.0.1, ephemeral port), "unix" (socket file in
    workdir) or "abstract" (Linux abstract socket "@name").
    The database (durusbdb directory or Durus file) stays in workdir across
    stop()/start(), so restarts see the same data.
    """

    def __init__(self, workdir=None, kind=None, transport="tcp", readonly=False,
                 extra_args=(), log_name="server.log"):
        self.kind = kind or target()
        self.transport = transport
        self.readonly = readonly
        self.extra_args = list(extra_args)
        self.own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="dbi-")
        self.log_path = os.path.join(self.workdir, log_name)
        self.proc = None
        self.address = None
        self.port = None
        if self.kind == TARGET_DURUSBDB:
            self.dbpath = os.path.join(self.workdir, "db")
            os.makedirs(self.dbpath, exist_ok=True)
        else:
            self.dbpath = os.path.join(self.workdir, "data.durus")

    # -- addresses -----------------------------------------------------
    def _choose_address(self):
        if self.transport == "tcp":
            self.port = free_port()
            self.address = ("127.0.0.1", self.port)
        elif self.transport == "unix":
            self.address = os.path.join(self.workdir, "s.sock")
        elif self.transport == "abstract":
            self.address = "@durusbdb-interop-%d-%d" % (os.getpid(), id(self))
        else:
            raise ValueError("unknown transport %r" % self.transport)

    def address_args(self):
        """The --host/--port or --address flags for the current address."""
        if isinstance(self.address, tuple):
            return ["--host=%s" % self.address[0], "--port=%d" % self.address[1]]
        return ["--address=%s" % self.address]

    def client_kwargs(self):
        """Keyword arguments for durus.client_storage.ClientStorage."""
        if isinstance(self.address, tuple):
            return {"host": self.address[0], "port": self.address[1]}
        return {"address": self.address}

    # -- commands --------------------------------------------------------
    def command(self):
        if self.kind == TARGET_DURUSBDB:
            binary = durusbdb_bin()
            if not os.path.exists(binary):
                raise ServerError(
                    "durusbdb binary not found at %s (build it with "
                    "`go build -o bin/durusbdb ./cmd/durusbdb` or set DURUSBDB_BIN)" % binary)
            cmd = [binary, "serve", "--dir=%s" % self.dbpath]
            if self.readonly:
                cmd.append("--readonly")
            else:
                cmd.append("--create")
            cmd += self.address_args()
            cmd += shlex.split(os.environ.get("DURUSBDB_SERVE_ARGS", ""))
        else:
            cmd = [sys.executable, "-m", "durus", "-s", "--file=%s" % self.dbpath]
            cmd += self.address_args()
            if self.readonly:
                cmd.append("--readonly")
            cmd.append("--logginglevel=20")
        return cmd + self.extra_args

    def stop_command(self):
        """`durus -s --stop` for the current address (Durus 4.3's own tool)."""
        return [sys.executable, "-m", "durus", "-s", "--stop"] + self.address_args()

    # -- life cycle ------------------------------------------------------
    def start(self, timeout=None):
        """Start the server and wait (bounded) until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            raise ServerError("server already running (pid %d)" % self.proc.pid)
        timeout = start_timeout() if timeout is None else timeout
        last_error = None
        for attempt in range(3):
            self._choose_address()
            cmd = self.command()
            log = open(self.log_path, "ab")
            log.write(("\n=== start %s\n" % " ".join(cmd)).encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.workdir, preexec_fn=_pdeathsig_preexec(), close_fds=True)
            finally:
                log.close()
            _live.add(self.proc)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if connectable(self.address, timeout=0.5):
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise ServerError("server did not accept on %s within %.1f s:\n%s" % (
                    self.address, timeout, self.log_tail()))
            last_error = "server exited with status %s:\n%s" % (
                self.proc.returncode, self.log_tail())
            _live.discard(self.proc)
            if self.transport != "tcp" or "address already in use" not in last_error.lower():
                break
        raise ServerError(last_error)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """Graceful stop: send Q (like `durus -s --stop`), wait, then kill.

        Returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            send_quit(self.address)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        _live.discard(self.proc)
        return self.proc.returncode

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, then kill. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        _live.discard(self.proc)
        return self.proc.returncode

    def kill(self):
        """SIGKILL and reap (kill -9)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        _live.discard(self.proc)

    def restart(self, readonly=None):
        self.stop()
        if readonly is not None:
            self.readonly = readonly
        return self.start()

    def cleanup(self):
        self.kill()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no log)"
        return data[-n:].decode("utf-8", "replace")

    def __repr__(self):
        return "ServerProcess(%s, %s, %s)" % (self.kind, self.transport, self.address)


def send_quit(address):
    """Send the Durus `Q` command to address; True if a connection was made."""
    if isinstance(address, tuple):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target_addr = address
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target_addr = address.replace("@", "\0")
    s.settimeout(2)
    try:
        s.connect(target_addr)
        s.sendall(b"Q")
        return True
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOENT, None):
            raise
        return False
    finally:
        s.close()


def external_address():
    """The server address given by DURUS_ADDRESS or DURUS_HOST/DURUS_PORT, or None."""
    address = os.environ.get("DURUS_ADDRESS")
    if address:
        return address
    port = os.environ.get("DURUS_PORT")
    if port:
        return (os.environ.get("DURUS_HOST", "127.0.0.1"), int(port))
    return None
