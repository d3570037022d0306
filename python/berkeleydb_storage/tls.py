"""TLSClientStorage: a stock Durus ClientStorage that speaks TLS.

``durusbdb serve --tls-cert CERT --tls-key KEY [--tls-client-ca CA]`` serves
the Durus protocol inside TLS. Durus 4.3's ClientStorage opens a plain
socket; this subclass wraps that socket with an ``ssl.SSLContext`` before the
first request, and is otherwise the stock client (use it with
``durus.connection.Connection`` as usual)::

    import ssl
    from durus.connection import Connection
    from berkeleydb_storage import TLSClientStorage

    context = ssl.create_default_context(cafile="ca.pem")
    context.load_cert_chain("client.pem", "client.key")  # for --tls-client-ca
    connection = Connection(TLSClientStorage(host="db.example", port=2972,
                                             ssl_context=context))
"""

import ssl

from durus.client_storage import ClientStorage
from durus.storage_server import DEFAULT_HOST, DEFAULT_PORT, SocketAddress

__all__ = ["TLSClientStorage"]


class _TLSAddress(SocketAddress):
    """A Durus SocketAddress whose connected sockets are wrapped in TLS."""

    def __init__(self, inner, context, server_hostname):
        self.inner = inner
        self.context = context
        self.server_hostname = server_hostname

    def __str__(self):
        return "tls:%s" % (self.inner,)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get_connected_socket(self):
        sock = self.inner.get_connected_socket()
        if sock is None:
            return None
        try:
            return self.context.wrap_socket(sock, server_hostname=self.server_hostname)
        except BaseException:
            sock.close()
            raise


class TLSClientStorage(ClientStorage):
    """durus.client_storage.ClientStorage over TLS.

    host, port and address are ClientStorage's (a unix socket address also
    works, if the server listens on one with TLS). ssl_context is an
    ssl.SSLContext for the client side (default:
    ``ssl.create_default_context()``, the system's CAs with host name
    checking); load a client certificate into it when the server requires
    one (--tls-client-ca). server_hostname is the name (or IP address)
    checked against the server's certificate; default host for TCP, none
    for unix sockets (there, pass server_hostname, or a context with
    check_hostname off). A failed handshake raises ssl.SSLError (or
    OSError) from the constructor.
    """

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, address=None,
                 ssl_context=None, server_hostname=None):
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
        if not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError("ssl_context must be an ssl.SSLContext, not %r" % (ssl_context,))
        inner = SocketAddress.new(address or (host, port))
        if server_hostname is None and not address:
            server_hostname = host
        ClientStorage.__init__(self, address=_TLSAddress(inner, ssl_context, server_hostname))
