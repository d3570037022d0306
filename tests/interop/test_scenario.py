"""C70: a Python 2 client (Durus 4.2) and a Python 3 client (Durus 4.3), each
on its own database, pass the same commit, load, conflict and pack scenario
(client_scenario.py).

Python 2.7 is found through $DURUSBDB_PYTHON2, else pyenv's 2.7 versions,
else python2.7 / python2 on PATH; Durus 4.2 is installed with that
interpreter's pip into a cache directory ($DURUS42_PY2_DIR, default
<tmp>/durusbdb-durus42-py2). Without any Python 2.7 the Python 2 case is
skipped (nothing to run it with); a failed install is a failure.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "client_scenario.py")


def find_python2():
    candidates = []
    if os.environ.get("DURUSBDB_PYTHON2"):
        candidates.append(os.environ["DURUSBDB_PYTHON2"])
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python")),
                         reverse=True)
    for name in ("python2.7", "python2"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for candidate in candidates:
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[0])"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == b"2":
            return candidate
    return None


def durus42_path(python2):
    target = os.environ.get("DURUS42_PY2_DIR") or os.path.join(
        tempfile.gettempdir(), "durusbdb-durus42-py2")
    check = [python2, "-c", "import durus.client_storage, durus; assert durus.__version__ == '4.2' "
             "if hasattr(durus, '__version__') else True"]
    env = dict(os.environ, PYTHONPATH=target)
    if os.path.isdir(os.path.join(target, "durus")):
        if subprocess.run(check, env=env, stdin=subprocess.DEVNULL, timeout=30).returncode == 0:
            return target
    os.makedirs(target, exist_ok=True)
    done = subprocess.run([python2, "-m", "pip", "install", "-q", "--no-deps", "--upgrade",
                           "--target", target, "durus==4.2"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600)
    if done.returncode != 0:
        pytest.fail("cannot install durus==4.2 for %s:\n%s" % (
            python2, done.stdout.decode("utf-8", "replace")[-3000:]))
    return target


@pytest.mark.parametrize("client", ["python3-durus4.3", "python2-durus4.2"])
@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_client_scenario(fresh_server, client, transport):
    if client.startswith("python2"):
        python = find_python2()
        if python is None:
            pytest.skip("no Python 2.7 on this machine (set DURUSBDB_PYTHON2)")
        env = dict(os.environ, PYTHONPATH=durus42_path(python))
        env.pop("PYTHONHOME", None)
    else:
        python = sys.executable
        env = dict(os.environ)
    srv = fresh_server(transport=transport)
    if isinstance(srv.address, tuple):
        args = [srv.address[0], str(srv.address[1])]
    else:
        args = [srv.address]
    done = subprocess.run([python, SCENARIO] + args, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    output = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0 and "scenario ok" in output, output + "\n" + srv.log_tail()
    expected = "python 2." if client.startswith("python2") else "python 3."
    assert expected in output, output
