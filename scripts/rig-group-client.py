#!/usr/bin/env python3
"""rig-group-client.py: the client of the compose rig's replication group.

Commits COMMITS transactions (default 200) through
berkeleydb_storage.ReplicatedConnection to the sites named in DURUS_SITES
(host:port,host:port,...), so that a site killed meanwhile
(`docker-compose --profile group kill site1`) is a failover the client
rides through, then checks that every site serves the same counter (a
replica may lag: polled, bounded; a site down is allowed unless
REQUIRE_ALL=1). It prints "progress N" every 100 commits. A commit whose outcome is unknown (its
site died with it in flight) is counted and read back: the counter must
then hold either value. Exit status 0 when every site agrees.
"""
import os
import sys
import time

from durus.client_storage import ClientStorage
from durus.connection import Connection

from berkeleydb_storage import CommitOutcomeUnknown, ReplicatedConnection
from berkeleydb_storage.failover import parse_address


def main():
    sites = [s for s in os.environ["DURUS_SITES"].split(",") if s]
    commits = int(os.environ.get("COMMITS", "200"))
    db = ReplicatedConnection(sites, connect_timeout=60)
    root = db.get_root()
    start = root.get("rig_counter", 0)
    unknown = 0

    def bump(connection):
        r = connection.get_root()
        r["rig_counter"] = r.get("rig_counter", 0) + 1

    for i in range(commits):
        try:
            db.transact(bump)
        except CommitOutcomeUnknown as e:
            unknown += 1
            print("rig-group-client: %s" % e, flush=True)
        if (i + 1) % 100 == 0:
            print("rig-group-client: progress %d" % (i + 1), flush=True)
    db.connection.abort()
    final = db.get_root()["rig_counter"]
    print("rig-group-client: %d commits from %d to %d through %d site(s) (%d reconnections, %d unknown outcomes)" % (
        commits, start, final, len(sites), db.reconnections, unknown), flush=True)
    if not commits - unknown <= final - start <= commits:
        print("rig-group-client: counter moved by %d, want %d to %d" % (final - start, commits - unknown, commits))
        return 1
    return check_sites(sites, final)


def check_sites(sites, want, timeout=30.0):
    """Every live site serves counter want (bounded wait for replicas);
    with REQUIRE_ALL=1 every site must be live (scripts/rig-group.sh
    restarts the site it killed)."""
    require_all = os.environ.get("REQUIRE_ALL") == "1"
    status = 0
    for site in sites:
        host, port = parse_address(site)
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                c = Connection(ClientStorage(host=host, port=port))
                got = c.get_root().get("rig_counter")
                c.get_storage().close()
            except (OSError, AssertionError) as e:
                got = "unreachable (%s)" % e
            if got == want:
                break
            time.sleep(0.5)
        print("rig-group-client: %s serves %s" % (site, got), flush=True)
        if got != want and (require_all or not str(got).startswith("unreachable")):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
