"""Concurrent clients: no lost update (commit serialisation, 5.4), packs while
clients commit (C43), acknowledged commits surviving kill -9 under load (C37)."""

import random
import threading
import time


from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError, DurusKeyError, ReadConflictError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList

from interop_util import open_connection, poll


class Counter(Persistent):
    def __init__(self):
        self.value = 0


class Node(Persistent):
    def __init__(self, value, children=()):
        self.value = value
        self.children = list(children)


def run_threads(target, n, timeout=120):
    errors = []
    results = [None] * n

    def wrap(i):
        try:
            results[i] = target(i)
        except BaseException as e:   # reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads still running after %s s" % timeout
    assert not errors, errors
    return results


def test_no_lost_updates(server, clients, key):
    """8 clients increment one counter concurrently, retrying on conflict."""
    setup = clients(server)
    setup.get_root()[key] = Counter()
    setup.commit()
    per_client = 15

    def work(i):
        c = open_connection(server.client_kwargs())
        done = conflicts = 0
        try:
            while done < per_client:
                try:
                    c.get_root()[key].value += 1
                    c.commit()
                    done += 1
                except ConflictError:
                    conflicts += 1
                    c.abort()
                    assert conflicts < 2000, "no progress"
            return conflicts
        finally:
            c.get_storage().close()

    run_threads(work, 8)
    setup.abort()
    assert setup.get_root()[key].value == 8 * per_client


def test_disjoint_commits_in_parallel(server, clients, key):
    """8 clients each fill their own list in parallel; every item arrives."""
    setup = clients(server)
    root = setup.get_root()
    root[key] = PersistentDict((i, PersistentList()) for i in range(8))
    setup.commit()

    def work(i):
        c = open_connection(server.client_kwargs())
        try:
            for n in range(30):
                for attempt in range(100):
                    try:
                        c.get_root()[key][i].append(Node((i, n)))
                        c.commit()
                        break
                    except ConflictError:
                        c.abort()
                else:
                    raise AssertionError("client %d: 100 conflicts in a row" % i)
        finally:
            c.get_storage().close()

    run_threads(work, 8)
    check = clients(server)
    lists = check.get_root()[key]
    for i in range(8):
        assert [node.value for node in lists[i]] == [(i, n) for n in range(30)]


def walk(connection, node):
    """Every value under node; raises if any reachable object cannot be loaded."""
    out = [node.value]
    for child in node.children:
        out.extend(walk(connection, child))
    return out


def test_pack_while_committing(fresh_server, clients):
    """C43: objects committed while collections run survive with what they reference;
    garbage made meanwhile goes."""
    srv = fresh_server()
    c = clients(srv)
    root = c.get_root()
    root["tree"] = Node(0, [Node(i, [Node((i, j)) for j in range(20)]) for i in range(500)])
    root["added"] = PersistentList()
    c.commit()
    expected_tree = walk(c, root["tree"])
    stop = threading.Event()
    packs = [0]

    packer_errors = []

    def packer():
        # A bare ClientStorage: a Connection opened while another client
        # commits can meet ReadConflictError on its root (a client quirk).
        p = ClientStorage(**srv.client_kwargs())
        try:
            while not stop.is_set():
                p.pack()
                packs[0] += 1
                time.sleep(0.05)
        except Exception as e:
            packer_errors.append(repr(e))
        finally:
            p.close()

    t = threading.Thread(target=packer, daemon=True)
    t.start()
    garbage = []
    try:
        for n in range(40):
            for attempt in range(50):
                try:
                    root["added"].append(Node(("added", n), [Node(("leaf", n, k)) for k in range(5)]))
                    doomed = Node(("doomed", n))
                    root["doomed"] = doomed
                    c.commit()
                    garbage.append(doomed._p_oid)
                    del root["doomed"]
                    c.commit()
                    break
                except ConflictError:
                    c.abort()
            else:
                raise AssertionError("50 conflicts in a row")
    finally:
        stop.set()
        t.join(30)
    assert not packer_errors, packer_errors
    assert packs[0] > 0
    fresh = clients(srv)
    froot = fresh.get_root()
    assert walk(fresh, froot["tree"]) == expected_tree
    added = froot["added"]
    assert [node.value for node in added] == [("added", n) for n in range(40)]
    for n, node in enumerate(added):
        assert [leaf.value for leaf in node.children] == [("leaf", n, k) for k in range(5)]
    # One more pack after the last commit: all the garbage goes.
    fresh.pack()
    storage = fresh.get_storage()

    def all_gone():
        for oid in garbage:
            try:
                storage.load(oid)
                return False
            except ReadConflictError:
                storage.sync()
                return False
            except DurusKeyError:
                pass
        return True

    assert poll(all_gone, timeout=10.0)


def test_acknowledged_commits_survive_kill9(fresh_server):
    """C37 (small): 8 committing clients, kill -9 at a random moment, restart:
    every acknowledged commit is there, each client's history is a prefix."""
    srv = fresh_server()
    setup = Connection(ClientStorage(**srv.client_kwargs()))
    setup.get_root()["logs"] = PersistentDict((i, PersistentList()) for i in range(8))
    setup.commit()
    setup.get_storage().close()
    rounds = 3
    for round_ in range(rounds):
        acked = [0] * 8
        stop = threading.Event()

        def work(i):
            try:
                c = open_connection(srv.client_kwargs())
                log = c.get_root()["logs"][i]
                n = len(log)
                acked[i] = n
                while not stop.is_set():
                    log.append(n)
                    c.commit()          # each client writes only its own list: no conflicts
                    n += 1
                    acked[i] = n
            except (OSError, EOFError, Exception):
                return   # the server was killed under us

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(random.uniform(0.5, 1.5))
        srv.kill()
        stop.set()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads)
        # Durus's Shelf needs --repair to drop a torn last transaction; durusbdb
        # accepts the flag and recovers on every open anyway.
        srv.extra_args = ["--repair"]
        srv.start()
        c = Connection(ClientStorage(**srv.client_kwargs()))
        try:
            logs = c.get_root()["logs"]
            for i in range(8):
                got = list(logs[i])
                assert got == list(range(len(got))), "client %d history not a prefix" % i
                assert len(got) >= acked[i], (
                    "round %d client %d: %d commits acknowledged, %d after restart"
                    % (round_, i, acked[i], len(got)))
                assert len(got) <= acked[i] + 1
            assert sum(len(logs[i]) for i in range(8)) > 0
        finally:
            c.get_storage().close()
