"""C70: a stock Durus 4.3 client on Python 3 runs the commit, load, conflict
and pack scenario of client_scenario.py in its own process, against its own
fresh database, over TCP and a unix socket.

Python 2 clients (Durus 4.2) are not tested and not claimed: Debian 12, the
CI machine, ships no Python 2 interpreter.
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.join(HERE, "client_scenario.py")


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_client_scenario(fresh_server, transport):
    srv = fresh_server(transport=transport)
    if isinstance(srv.address, tuple):
        args = [srv.address[0], str(srv.address[1])]
    else:
        args = [srv.address]
    done = subprocess.run([sys.executable, SCENARIO] + args, env=dict(os.environ),
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    output = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0 and "scenario ok" in output, output + "\n" + srv.log_tail()
    assert "python 3." in output, output
