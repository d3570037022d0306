#!/usr/bin/env python3
"""Run Durus 4.3's own client/storage-server tests against a server.

Durus's test directory is not installed with the wheel: this script fetches
the durus==4.3 sdist with pip (cached in $DURUS_SDIST_DIR, default
<tmp>/durusbdb-durus-sdist), and runs, with their server start/stop pointed
at the server under test, over TCP and over a unix socket:

  utest_client_storage.ClientTest (and UnixDomainSocketTest): every test method,
      among them check_client_storage, check_oid_reuse_with_invalidation and
      check_oid_reuse (expected to fail against durusbdb: no oid reuse,
      PROTOCOL.md A1);
  utest_connection.TestConnectionClientStorage: every test method (it also
      inherits the MemoryStorage tests, run here against the server);
  stress.py: a few concurrent stress clients (--max-loops), unless --no-stress.

Each test gets a fresh server: ``durusbdb serve`` on a fresh directory
(DURUSBDB_BIN, default <repo>/bin/durusbdb) or, with --target=durus, the
reference ``durus -s``. _post stops it the way Durus's tests do
(durus.__main__.stop_durus, i.e. `durus -s --stop`) and checks it exited.

sancho (Durus's test framework, Python 2 only on PyPI) is replaced by a small
stand-in. Its raises() returns a bool that the tests mostly ignore; here it
asserts by default (use --lenient for sancho's behaviour).

Prints one line per test (PASS, FAIL, XFAIL = expected failure, XPASS =
expected failure that passed) and exits 1 on any FAIL or XPASS.
"""

import argparse
import faulthandler
import glob
import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import durus_server  # noqa: E402
from durus_server import ServerProcess, TARGET_DURUS, TARGET_DURUSBDB  # noqa: E402

DURUS_VERSION = "4.3"

# (target, test id) -> (reason, text the failure must contain): failures
# PROTOCOL.md documents as deliberate. A failure without that text is a FAIL.
EXPECTED_FAILURES = {
    (TARGET_DURUSBDB, "ClientTest.check_oid_reuse"):
        ("A1: durusbdb never reuses oids; the test depends on Shelf oid reuse",
         "AssertionError"),
}


def sdist_test_dir():
    """Directory holding Durus 4.3's test/ (downloaded with pip once, then cached)."""
    cache = os.environ.get("DURUS_SDIST_DIR") or os.path.join(
        tempfile.gettempdir(), "durusbdb-durus-sdist")
    test_dir = os.path.join(cache, "durus-%s" % DURUS_VERSION, "test")
    if os.path.exists(os.path.join(test_dir, "utest_client_storage.py")):
        return test_dir
    os.makedirs(cache, exist_ok=True)
    archives = glob.glob(os.path.join(cache, "[Dd]urus-%s.tar.gz" % DURUS_VERSION))
    if not archives:
        cmd = [sys.executable, "-m", "pip", "download", "durus==%s" % DURUS_VERSION,
               "--no-binary", ":all:", "--no-deps", "-d", cache]
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=600)
        archives = glob.glob(os.path.join(cache, "[Dd]urus-%s.tar.gz" % DURUS_VERSION))
        if done.returncode != 0 or not archives:
            sys.exit("cannot download the durus %s sdist:\n%s" % (
                DURUS_VERSION, done.stdout.decode("utf-8", "replace")))
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers()
                   if m.isfile() and "/test/" in m.name and ".." not in m.name
                   and not m.name.startswith("/")]
        for m in members:
            tar.extract(m, cache)
    if not os.path.exists(os.path.join(test_dir, "utest_client_storage.py")):
        sys.exit("the durus %s sdist has no test/utest_client_storage.py" % DURUS_VERSION)
    return test_dir


def install_sancho(strict):
    """A stand-in for sancho.utest: UTest (runs nothing itself) and raises."""
    sancho = types.ModuleType("sancho")
    utest = types.ModuleType("sancho.utest")

    class UTest(object):
        def __init__(self):
            pass

        def _pre(self):
            pass

        def _post(self):
            pass

    def raises(exc, func, *args, **kwargs):
        try:
            func(*args, **kwargs)
        except exc:
            return True
        if strict:
            raise AssertionError("%s did not raise %s" % (
                getattr(func, "__name__", func), getattr(exc, "__name__", exc)))
        return False

    utest.UTest = UTest
    utest.raises = raises
    sancho.utest = utest
    sys.modules["sancho"] = sancho
    sys.modules["sancho.utest"] = utest


def test_names(cls):
    """The methods sancho would run: public callables, sorted."""
    names = []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        if callable(getattr(cls, name)) and not isinstance(getattr(cls, name), type):
            names.append(name)
    return names


class Harness(object):
    """Points a Durus test class's _pre/_post at a ServerProcess."""

    def __init__(self, target, transport):
        self.target = target
        self.transport = transport
        self.server = None
        self.stop_problem = None

    def pre(self, test):
        self.stop_problem = None
        self.server = ServerProcess(kind=self.target, transport=self.transport)
        self.server.start()
        address = self.server.address
        test.address = address
        if isinstance(address, tuple):
            test.port = address[1]
        test.filename = os.path.join(self.server.workdir, "unused")

    def post(self, test):
        from durus import __main__ as durus_main
        srv = self.server
        try:
            if srv.running():
                durus_main.stop_durus(srv.address)   # what Durus's _post does
                try:
                    status = srv.proc.wait(10)
                except subprocess.TimeoutExpired:
                    status = None
                if status is None:
                    self.stop_problem = "server still running 10 s after stop_durus (Q)"
                elif status != 0:
                    self.stop_problem = "server exited with status %s after Q" % status
            else:
                self.stop_problem = "server died during the test (status %s)" % srv.proc.returncode
        finally:
            srv.cleanup()


def make_classes(target, transport, harness):
    import utest_client_storage as ucs
    import utest_connection as ucn
    from durus.client_storage import ClientStorage

    def pre(self):
        harness.pre(self)

    def post(self):
        harness.post(self)

    classes = []
    base = ucs.UnixDomainSocketTest if transport == "unix" else ucs.ClientTest
    classes.append(("ClientTest", type(base.__name__ + "_", (base,),
                                       {"_pre": pre, "_post": post})))

    def get_storage(self):
        return ClientStorage(**harness.server.client_kwargs())

    classes.append(("TestConnectionClientStorage", type(
        "TestConnectionClientStorage_", (ucn.TestConnectionClientStorage,),
        {"_pre": pre, "_post": post, "_get_storage": get_storage})))
    return classes


def run_one(cls, name, harness, timeout):
    """Run _pre, the test, _post. Returns (ok, message)."""
    test = cls.__new__(cls)
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        try:
            test._pre()
        except BaseException:
            return False, "_pre (server start) failed: " + traceback.format_exc(limit=3)
        error = None
        captured = io.StringIO()
        old_stdout, sys.stdout = sys.stdout, captured   # as sancho: output only on failure
        try:
            getattr(test, name)()
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            error = captured.getvalue()[-2000:] + traceback.format_exc(limit=6)
        finally:
            sys.stdout = old_stdout
        try:
            test._post()
        except BaseException:
            error = (error or "") + "_post failed: " + traceback.format_exc(limit=3)
        if harness.stop_problem:
            error = (error or "") + "stop: " + harness.stop_problem + "\n" + harness.server.log_tail(1500)
        return error is None, error or ""
    finally:
        faulthandler.cancel_dump_traceback_later()


def run_stress(target, transport, clients, loops, timeout, test_dir):
    """Durus's stress.py: concurrent clients against one server."""
    if transport != "tcp":
        return None   # stress.py only takes --host/--port
    srv = ServerProcess(kind=target, transport=transport)
    try:
        srv.start()
        parent = os.path.dirname(test_dir)
        code = (
            "import sys, types, durus\n"
            "m = types.ModuleType('durus.test'); m.__path__ = [%r]\n"
            "sys.modules['durus.test'] = m; durus.test = m\n"
            "import durus.test.stress as stress\n"
            "stress.main()\n" % test_dir)
        procs = []
        for i in range(clients):
            cmd = [sys.executable, "-c", code, "--host=127.0.0.1", "--port=%d" % srv.port,
                   "--max-loops=%d" % loops]
            procs.append(subprocess.Popen(cmd, cwd=parent, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            if i == 0:
                time.sleep(1.0)   # let the first client create the object graph
        deadline = time.monotonic() + timeout
        problems = []
        for p in procs:
            try:
                out, _ = p.communicate(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
                problems.append("client timed out:\n" + out.decode("utf-8", "replace")[-1500:])
                continue
            if p.returncode != 0:
                problems.append("client exit %s:\n%s" % (
                    p.returncode, out.decode("utf-8", "replace")[-1500:]))
        if not srv.running():
            problems.append("server died:\n" + srv.log_tail())
        return (not problems), "\n".join(problems)
    finally:
        srv.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=[TARGET_DURUSBDB, TARGET_DURUS], default=None,
                    help="server under test (default: env DURUSBDB_TARGET or durusbdb)")
    ap.add_argument("--transports", default="tcp,unix")
    ap.add_argument("--lenient", action="store_true",
                    help="raises() returns False instead of failing (as sancho)")
    ap.add_argument("--no-stress", action="store_true")
    ap.add_argument("--stress-clients", type=int, default=3)
    ap.add_argument("--stress-loops", type=int, default=20)
    ap.add_argument("-k", dest="keyword", default=None, help="only tests whose id contains this")
    ap.add_argument("--timeout", type=float, default=120.0, help="per test, seconds")
    args = ap.parse_args()
    if args.target:
        os.environ["DURUSBDB_TARGET"] = args.target
    target = durus_server.target()
    if target == TARGET_DURUSBDB and not os.path.exists(durus_server.durusbdb_bin()):
        sys.exit("durusbdb binary not found at %s (set DURUSBDB_BIN)" % durus_server.durusbdb_bin())

    socket.setdefaulttimeout(30)
    test_dir = sdist_test_dir()
    install_sancho(strict=not args.lenient)
    sys.path.insert(0, test_dir)
    print("Durus %s tests from %s against %s%s" % (
        DURUS_VERSION, test_dir, target,
        " (%s)" % durus_server.durusbdb_bin() if target == TARGET_DURUSBDB else " (durus -s)"))

    counts = {"PASS": 0, "FAIL": 0, "XFAIL": 0, "XPASS": 0}
    failures = []
    for transport in [t.strip() for t in args.transports.split(",") if t.strip()]:
        harness = Harness(target, transport)
        for class_id, cls in make_classes(target, transport, harness):
            for name in test_names(cls):
                test_id = "%s.%s" % (class_id, name)
                full_id = "%s[%s]" % (test_id, transport)
                if args.keyword and args.keyword not in full_id:
                    continue
                started = time.monotonic()
                ok, message = run_one(cls, name, harness, args.timeout)
                expected, must_contain = EXPECTED_FAILURES.get((target, test_id), (None, None))
                if not ok and expected and must_contain not in message:
                    expected = None     # failed, but not the documented way
                if ok and expected:
                    verdict = "XPASS"
                elif ok:
                    verdict = "PASS"
                elif expected:
                    verdict = "XFAIL"
                else:
                    verdict = "FAIL"
                counts[verdict] += 1
                line = "%-5s %-70s %5.1fs" % (verdict, full_id, time.monotonic() - started)
                if expected:
                    line += "  (expected to fail: %s)" % expected
                print(line, flush=True)
                if verdict in ("FAIL", "XFAIL"):
                    for text in message.rstrip().splitlines()[-12:]:
                        print("      | " + text)
                if verdict in ("FAIL", "XPASS"):
                    failures.append(full_id)
        if not args.no_stress and (not args.keyword or "stress" in args.keyword):
            started = time.monotonic()
            result = run_stress(target, transport, args.stress_clients, args.stress_loops,
                                300, test_dir)
            if result is not None:
                ok, message = result
                verdict = "PASS" if ok else "FAIL"
                counts[verdict] += 1
                print("%-5s %-70s %5.1fs" % (verdict, "stress.py x%d[%s]" % (
                    args.stress_clients, transport), time.monotonic() - started), flush=True)
                if not ok:
                    failures.append("stress[%s]" % transport)
                    for text in message.rstrip().splitlines()[-20:]:
                        print("      | " + text)
    print("\n%(PASS)d passed, %(FAIL)d failed, %(XFAIL)d expected failures, "
          "%(XPASS)d unexpected passes" % counts)
    if failures:
        print("FAILED: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
