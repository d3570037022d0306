"""ReplicatedConnection: a Durus Connection to a durusbdb replication group.

Every site of a group (``durusbdb serve --repl-listen ... --repl-peer ...``)
serves every stock Durus client: replicas answer loads themselves and
forward commits to the master. When a site dies (or a replica drops its
connections after a rejoin), the client's socket fails and a stock
``Connection`` is unusable. ``ReplicatedConnection`` takes the Durus
addresses of the sites, connects to the first live one, and after such a
failure connects again -- to a live site, with a fresh ``Connection`` --
so that the application can go on::

    from berkeleydb_storage import ReplicatedConnection, CommitOutcomeUnknown

    db = ReplicatedConnection(["db1:2972", "db2:2972", "db3:2972"])

    def deposit(connection):
        account = connection.get_root()["account"]
        account.balance += 10

    try:
        db.transact(deposit)      # retried on a conflict or a lost site
    except CommitOutcomeUnknown:
        ...                       # look at the data, then decide

What a failover means for a commit:

* a commit answered (``commit()`` returned) is on the new master: the
  group answers only once a quorum of sites has it on disk, and an
  election picks the site with the newest log;
* a commit **in flight** when its site or the master died has an
  **unknown outcome**: it may be on the new master or lost. ``commit()``
  then raises ``CommitOutcomeUnknown`` (after connecting again): read the
  data back to find out, and repeat it only if it is idempotent or absent;
* a connection lost before the commit was sent raises ``ConnectionLost``
  (after connecting again): nothing was written, the transaction may be
  run again. ``transact`` does that by itself;
* a commit the site refused (status ``E``: nothing was stored; during a
  failover, a replica that cannot reach a master yet) raises
  ``CommitRefused`` after an ``abort()``: run it again. ``transact``
  does, on the next site after a growing pause, as an election takes a
  moment.

Objects loaded through the old ``Connection`` belong to it: after a
reconnection, take them again from ``connection.get_root()``.
"""

import socket
import time

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError, ProtocolError, WriteConflictError
from durus.serialize import split_oids
from durus.storage_server import STATUS_INVALID, STATUS_OKAY, SocketAddress, StorageServer
from durus.utils import as_bytes, int4_to_str, iteritems, join_bytes, read, read_int4, write, write_all, write_int4, write_int4_str

__all__ = [
    "ReplicatedConnection",
    "FailoverError",
    "ConnectionLost",
    "CommitOutcomeUnknown",
    "CommitRefused",
    "NoLiveSite",
    "parse_address",
]

# What a lost site looks like to Durus's client: a short read (IOError),
# a reset or broken pipe, a timeout (all OSError), a refused connection
# (ClientStorage asserts it connected), a garbled reply.
_LOST = (OSError, AssertionError, ProtocolError)

# durusbdb's refusal of a commit (PROTOCOL.md §5.5): nothing was stored.
_STATUS_REFUSED = b"E"


class FailoverError(Exception):
    """Base class of ReplicatedConnection's errors."""


class ConnectionLost(FailoverError):
    """The site was lost before a commit was sent; reconnected, nothing was
    written: the transaction may be run again."""


class CommitOutcomeUnknown(FailoverError):
    """The site was lost while a commit was in flight; reconnected. The
    commit may or may not be on the new master: read the data back."""


class CommitRefused(FailoverError):
    """The site answered the commit with status E: nothing was stored (a
    replica that cannot reach the master, a read-only or failing server, a
    malformed record; PROTOCOL.md §5.5). The Connection was aborted: run
    the transaction again, later or on another site."""


class NoLiveSite(FailoverError):
    """No site answered within the connect timeout."""


def parse_address(address):
    """(host, port) of "host:port", "[v6]:port" or a (host, port) pair."""
    if isinstance(address, tuple):
        host, port = address
        return host, int(port)
    host, sep, port = str(address).rpartition(":")
    if not sep or not host:
        raise ValueError("want host:port, not %r" % (address,))
    return host.strip("[]"), int(port)


class _TrackedStorage(ClientStorage):
    """ClientStorage that notes when a commit's data has started to go out.

    Durus's commit is 'C', the server's invalidations, then the data and
    the server's verdict: a failure before the data is sent commits
    nothing; one after it leaves the outcome unknown. end is Durus 4.3's
    ClientStorage.end with that mark added.
    """

    in_commit = False

    def __init__(self, host, port, timeout=None):
        """ClientStorage.__init__ (Durus 4.3) with the connection and the
        version handshake bounded by timeout seconds: a site that takes
        the connection but never answers (stopped, or still opening its
        database) raises socket.timeout instead of blocking for ever. The
        caller sets the socket back to blocking once connected."""
        self.address = SocketAddress.new((host, port))
        sock = socket.socket(self.address.get_address_family(), socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except OSError:
            sock.close()
            raise
        self.s = sock
        self.oid_pool = []
        self.oid_pool_size = 32
        self.begin()
        protocol = StorageServer.protocol
        write_all(self.s, 'V', protocol)
        if read(self.s, 4) != protocol:
            sock.close()
            raise ProtocolError("Protocol version mismatch.")

    def end(self, handle_invalidations=None):
        self.in_commit = False
        write(self.s, 'C')
        n = read_int4(self.s)
        if n != 0:
            oid_list = split_oids(read(self.s, n * 8))
            try:
                handle_invalidations(oid_list)
            except ConflictError:
                self.transaction_new_oids.reverse()
                self.oid_pool.extend(self.transaction_new_oids)
                self.begin()
                write_int4(self.s, 0)  # tell the server we are done
                raise
        tdata = []
        for oid, record in iteritems(self.records):
            tdata.append(int4_to_str(8 + len(record)))
            tdata.append(as_bytes(oid))
            tdata.append(record)
        tdata = join_bytes(tdata)
        # From here the server may commit: a failure is an unknown outcome.
        # Left set when the socket fails: the storage is then discarded.
        self.in_commit = True
        write_int4_str(self.s, tdata)
        self.records.clear()
        if len(tdata) > 0:
            status = read(self.s, 1)
            if status == STATUS_INVALID:
                self.in_commit = False
                raise WriteConflictError()
            if status == _STATUS_REFUSED:
                self.in_commit = False
                raise CommitRefused("the server refused the commit (status E): nothing was stored")
            if status != STATUS_OKAY:
                raise ProtocolError('server returned invalid status %r' % status)
        self.in_commit = False


class ReplicatedConnection(object):
    """A Durus Connection that moves to another site when its site is lost.

    addresses: the Durus addresses of the group's sites ("host:port" or
    (host, port)), tried in order, starting after the one that failed.
    connect_timeout: how long (seconds) a (re)connection keeps trying the
    sites before NoLiveSite; a failover takes about 2 s. cache_size is
    Connection's. storage_factory(host, port) makes the storage (default
    a ClientStorage that tracks commits in flight and whose connection,
    handshake and first load are bounded by connect_timeout, so a site that
    takes connections but never answers is skipped; a factory of another
    class loses both: a failed commit then counts as in flight, and such a
    site can hold the connection without bound).
    """

    def __init__(self, addresses, connect_timeout=30.0, cache_size=100000, storage_factory=None):
        self.addresses = [parse_address(a) for a in addresses]
        if not self.addresses:
            raise ValueError("ReplicatedConnection needs at least one address")
        self.connect_timeout = connect_timeout
        self.cache_size = cache_size
        self.storage_factory = storage_factory
        self.connection = None
        self.address = None
        self.reconnections = 0
        self._next = 0
        self._connect()

    def _connect(self):
        """Connect to the first site that answers, cycling through the
        addresses with a growing pause until connect_timeout."""
        deadline = time.monotonic() + self.connect_timeout
        pause, errors = 0.05, {}
        while True:
            for i in range(len(self.addresses)):
                k = (self._next + i) % len(self.addresses)
                host, port = self.addresses[k]
                storage = None
                try:
                    if self.storage_factory is None:
                        # The connection, the handshake and the root's
                        # load are bounded by what is left of the time.
                        left = max(deadline - time.monotonic(), 0.1)
                        storage = _TrackedStorage(host, port, timeout=left)
                    else:
                        storage = self.storage_factory(host, port)
                    connection = Connection(storage, cache_size=self.cache_size)
                except _LOST as e:
                    if storage is not None and self.storage_factory is None:
                        storage.s.close()
                    errors["%s:%d" % (host, port)] = e
                    continue
                if self.storage_factory is None:
                    storage.s.settimeout(None)  # a commit may wait long: no bound once connected
                self.connection, self.address = connection, (host, port)
                self._next = (k + 1) % len(self.addresses)
                return connection
            if time.monotonic() + pause > deadline:
                raise NoLiveSite("no site of %s answered within %.1f s: %s" % (
                    ", ".join("%s:%d" % a for a in self.addresses), self.connect_timeout,
                    "; ".join("%s: %s" % kv for kv in sorted(errors.items()))))
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def reconnect(self):
        """Drop the current Connection and connect to a live site (the next
        one first) with a fresh Connection."""
        old = self.connection
        self.connection = None
        if old is not None:
            try:
                old.get_storage().s.close()
            except Exception:
                pass
        self.reconnections += 1
        return self._connect()

    def get_root(self):
        """The root of the current Connection; see _lost for failures."""
        try:
            return self.connection.get_root()
        except _LOST as e:
            self._lost(e, False)

    def abort(self):
        """Connection.abort of the current Connection."""
        self.connection.abort()

    def commit(self):
        """Connection.commit. A ConflictError passes through (abort and run
        again); a lost site raises ConnectionLost or CommitOutcomeUnknown
        after reconnecting."""
        storage = self.connection.get_storage()
        changed = bool(self.connection.changed)
        try:
            self.connection.commit()
        except ConflictError:
            raise
        except CommitRefused as e:
            self.connection.abort()
            raise CommitRefused("site %s:%d refused the commit (status E): nothing was stored" % self.address) from e
        except _LOST as e:
            in_commit = storage.in_commit if isinstance(storage, _TrackedStorage) else changed
            self._lost(e, in_commit)

    def _lost(self, error, in_commit):
        """Reconnect after error and raise what the caller must know."""
        where = "%s:%d" % self.address
        self.reconnect()
        if in_commit:
            raise CommitOutcomeUnknown("site %s lost while a commit was in flight (%s): its outcome is unknown; "
                                       "reconnected to %s:%d" % ((where, error) + self.address)) from error
        raise ConnectionLost("site %s lost (%s): reconnected to %s:%d, nothing was committed" % (
            (where, error) + self.address)) from error

    def transact(self, fn, attempts=10):
        """Run fn(connection) and commit, again on a conflict or a site lost
        before the commit was sent (at most attempts runs). Returns fn's
        result. CommitOutcomeUnknown is raised, never retried: only the
        caller knows whether running fn twice is harmless. A refused commit
        (CommitRefused) runs again on the next site after a pause that grows
        from 0.05 s to 1 s (the group may be electing a master)."""
        pause = 0.05
        for attempt in range(attempts):
            try:
                result = fn(self.connection)
                self.commit()
                return result
            except ConflictError:
                self.connection.abort()
            except CommitRefused:
                if attempt + 1 == attempts:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                self.reconnect()
                continue
            except ConnectionLost:
                pass
            except _LOST as e:  # inside fn: loads through a lost site
                try:
                    self._lost(e, False)
                except ConnectionLost:
                    pass
            if attempt + 1 == attempts:
                raise FailoverError("transaction not committed after %d attempts" % attempts)
        raise FailoverError("transaction not committed: attempts must be positive")

    def close(self):
        """Close the current Connection's storage."""
        if self.connection is not None:
            try:
                self.connection.get_storage().close()
            except _LOST:
                pass
            self.connection = None
