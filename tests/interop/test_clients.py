"""Two clients: invalidation after abort()/sync, write conflicts (C17-C25, C38)."""

import pytest

from durus.error import ConflictError, ReadConflictError, WriteConflictError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict


class Counter(Persistent):
    def __init__(self):
        self.value = 0


def test_commit_seen_after_abort(server, clients, key):
    a = clients(server)
    b = clients(server)
    ra = a.get_root()
    rb = b.get_root()
    ra[key] = PersistentDict(x=1)
    a.commit()

    # b has not synced: its cached root is stale until abort().
    b.abort()
    assert rb[key]["x"] == 1

    rb[key]["x"] = 2
    rb[key]["y"] = "from b"
    b.commit()

    a.abort()
    assert ra[key]["x"] == 2
    assert ra[key]["y"] == "from b"


def test_sync_lists_committed_oids(server, clients, key):
    a = clients(server)
    b = clients(server)
    ra = a.get_root()
    ra[key] = c = Counter()
    a.commit()
    b.abort()
    assert b.get_root()[key].value == 0

    sb = b.get_storage()
    sb.sync()                      # start from an empty invalid set
    c.value = 1
    a.commit()
    invalid = sb.sync()
    assert c._p_oid in invalid
    assert len(invalid) == len(set(invalid))
    assert sb.sync() == []         # emptied by the first sync (C13)
    # The committer is not told about its own commit (C19).
    assert c._p_oid not in a.get_storage().sync()


def test_invalid_object_load_conflicts_until_sync(server, clients, key):
    a = clients(server)
    b = clients(server)
    ra = a.get_root()
    ra[key] = c = Counter()
    a.commit()
    oid = c._p_oid
    sb = b.get_storage()
    sb.sync()
    c.value = 7
    a.commit()
    # b never loaded the object, but it is invalid for b until b syncs (C18).
    with pytest.raises(ReadConflictError):
        sb.load(oid)
    with pytest.raises(ReadConflictError):
        sb.load(oid)
    assert oid in sb.sync()
    assert sb.load(oid) == a.get_storage().load(oid)


def test_stale_cache_refreshed_by_commit(server, clients, key):
    """Phase 1 of a commit brings invalidations: an unrelated commit ghosts stale objects."""
    a = clients(server)
    b = clients(server)
    ra = a.get_root()
    ra[key] = PersistentDict(c=Counter(), other=Counter())
    a.commit()
    b.abort()
    rb = b.get_root()
    assert rb[key]["c"].value == 0
    b.abort()                      # new transaction: b has not accessed c in it
    assert not rb[key]["c"]._p_is_ghost()
    ra[key]["c"].value = 5
    ra[key]["c"]._p_note_change()
    a.commit()
    # b commits something unrelated; it receives the invalidation and
    # afterwards sees a's value.
    rb[key]["other"].value = 1
    b.commit()
    assert rb[key]["c"].value == 5


def test_write_conflict(server, clients, key):
    a = clients(server)
    b = clients(server)
    ra = a.get_root()
    ra[key] = PersistentDict()
    a.commit()
    b.abort()
    rb = b.get_root()
    da = ra[key]
    db = rb[key]
    assert len(db) == 0           # b has accessed the dict

    da["a"] = 1
    a.commit()
    db["b"] = 2
    with pytest.raises(ConflictError):
        b.commit()
    b.abort()
    # After abort b sees a's change, and its retry commits.
    assert dict(rb[key].items()) == {"a": 1}
    rb[key]["b"] = 2
    b.commit()
    a.abort()
    assert dict(ra[key].items()) == {"a": 1, "b": 2}


def test_write_conflict_on_root(server, clients):
    """C25: a write conflict on the root raises in the client committing second."""
    a = clients(server)
    b = clients(server)
    a.get_root()
    b.get_root()
    a.abort()
    b.abort()
    a.get_root()["conflict_root_a"] = 1
    b.get_root()["conflict_root_b"] = 1
    a.commit()
    with pytest.raises(ConflictError) as info:
        b.commit()
    assert isinstance(info.value, (WriteConflictError, ConflictError))
    b.abort()
    assert b.get_root()["conflict_root_a"] == 1
    assert "conflict_root_b" not in b.get_root()


def test_new_connection_not_told_old_commits(server, clients, key):
    """C20: a connection opened after a commit is not told about it."""
    a = clients(server)
    a.get_root()[key] = Counter()
    a.commit()
    late = clients.storage(server)
    assert a.get_root()[key]._p_oid not in late.sync()


def test_two_commits_one_invalidation(server, clients, key):
    """C22: two commits of X give the other client a single X."""
    a = clients(server)
    b = clients(server)
    a.get_root()[key] = c = Counter()
    a.commit()
    sb = b.get_storage()
    sb.sync()
    c.value = 1
    a.commit()
    c.value = 2
    a.commit()
    invalid = sb.sync()
    assert invalid.count(c._p_oid) == 1


def test_many_clients_counter(server, clients, key):
    """Several clients increment one counter with retry on conflict; nothing is lost."""
    conns = [clients(server) for _ in range(4)]
    conns[0].get_root()[key] = Counter()
    conns[0].commit()
    for c in conns:
        c.abort()
    total = 0
    for round_ in range(10):
        for c in conns:
            for attempt in range(20):
                try:
                    c.get_root()[key].value += 1
                    c.commit()
                    total += 1
                    break
                except ConflictError:
                    c.abort()
            else:
                pytest.fail("no progress after 20 conflicts")
    for c in conns:
        c.abort()
        assert c.get_root()[key].value == total == 40


def test_invalid_load_is_retried_transparently(server, clients, key):
    """5.7: a load answered I makes the client sync and retry; no error when the
    transaction has not accessed anything that changed."""
    a = clients(server)
    a.get_root()[key] = PersistentDict(x=Counter())
    a.commit()
    b = clients(server)
    x_oid = a.get_root()[key]["x"]._p_oid
    a.get_root()[key]["x"].value = 9
    a.commit()
    # b has never loaded x; the server says I for it until b syncs.
    assert b.get(x_oid).value == 9


def test_read_conflict(server, clients, key):
    """5.7: if an object accessed in the current transaction was changed by
    another client, loading any invalidated object raises ReadConflictError."""
    a = clients(server)
    root = a.get_root()
    root[key] = PersistentDict(x=Counter(), y=Counter())
    a.commit()
    x_oid, y_oid = root[key]["x"]._p_oid, root[key]["y"]._p_oid
    b = clients(server)
    b.abort()
    by = b.get(y_oid)
    assert by.value == 0               # b accessed y in this transaction
    root[key]["x"].value = 1
    root[key]["y"].value = 1
    a.commit()
    with pytest.raises(ReadConflictError):
        b.get(x_oid).value             # x was never loaded by b: its load says I
    b.abort()
    assert b.get(x_oid).value == 1 and b.get(y_oid).value == 1
