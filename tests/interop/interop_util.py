"""Helpers shared by the interop test modules (markers, polling)."""

import time

import pytest

import durus_server
from durus_server import TARGET_DURUS, TARGET_DURUSBDB

__all__ = ["TARGET_DURUS", "TARGET_DURUSBDB", "is_target", "differs", "poll", "open_connection"]


def is_target(name):
    """True if the suite runs against a server it starts of kind name."""
    return durus_server.target() == name and not durus_server.external_address()


def differs(target_without_behaviour, reason, raises=None):
    """Strict xfail for a [differs] behaviour on the target that lacks it.

    target_without_behaviour: TARGET_DURUS (the reference lacks a durusbdb
    fix) or TARGET_DURUSBDB (durusbdb deliberately drops a reference
    behaviour). Strict: an unexpected pass fails the run. raises: the
    exception type(s) the expected failure must raise (others are failures).
    """
    return pytest.mark.xfail(is_target(target_without_behaviour), strict=True,
                             reason="[differs] " + reason, raises=raises)


def poll(predicate, timeout=5.0, interval=0.05):
    """Call predicate until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def open_connection(client_kwargs, attempts=20, **kwargs):
    """Connection(ClientStorage(...)), retried while other clients commit.

    Connection() loads the root at once; if another client commits the root
    between the client's sync and its retry, Durus raises ReadConflictError
    from the constructor (normal Durus behaviour under concurrent commits)."""
    from durus.client_storage import ClientStorage
    from durus.connection import Connection
    from durus.error import ReadConflictError
    for attempt in range(attempts):
        storage = ClientStorage(**client_kwargs)
        try:
            return Connection(storage, **kwargs)
        except ReadConflictError:
            storage.close()
            time.sleep(0.01 * attempt)
    raise AssertionError("no Connection after %d ReadConflictErrors" % attempts)
