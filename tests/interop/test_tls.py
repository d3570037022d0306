"""TLS between a stock Durus 4.3 client and ``durusbdb serve --tls-*``.

The client is durus.connection.Connection over
berkeleydb_storage.TLSClientStorage (a ClientStorage subclass that wraps its
socket with an ssl.SSLContext): the installed shim, else this checkout's
python/berkeleydb_storage/tls.py. Certificates are made for each test with
the openssl command (scripts/install-deps.sh installs it): a CA, a server
certificate for 127.0.0.1, a client certificate of that CA, and one of
another CA.

TLS is durusbdb's own option: the tests with a server run only against a
durusbdb server this suite starts.
"""

import importlib.util
import os
import shutil
import ssl
import subprocess

import pytest

from interop_util import is_target
from durus_server import TARGET_DURUSBDB

try:
    from berkeleydb_storage import TLSClientStorage
except ImportError:
    # The shim is not installed (scripts/interop.sh installs it): load this
    # checkout's module by its path, leaving sys.path and the package alone
    # for the other test modules.
    _path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "python", "berkeleydb_storage", "tls.py")
    _spec = importlib.util.spec_from_file_location("_durusbdb_tls_client", _path)
    _tls = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_tls)
    TLSClientStorage = _tls.TLSClientStorage

from durus.client_storage import ClientStorage  # noqa: E402
from durus.connection import Connection  # noqa: E402
from durus.error import ProtocolError  # noqa: E402
from durus.persistent_dict import PersistentDict  # noqa: E402

needs_durusbdb = pytest.mark.skipif(
    not is_target(TARGET_DURUSBDB),
    reason="--tls-cert/--tls-key/--tls-client-ca are durusbdb options (needs a durusbdb server started by the suite)")

# What a refused client sees: the handshake fails, or (TLS 1.3 sends the
# server's verdict after the client's side of the handshake) the first
# read fails or finds the connection closed.
REFUSED = (ssl.SSLError, OSError, ProtocolError)


def _openssl(*args, cwd):
    exe = shutil.which("openssl")
    assert exe, "the openssl command is needed to make test certificates (scripts/install-deps.sh installs it)"
    subprocess.run([exe] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
             "-subj", "/CN=durusbdb interop " + name, cwd=d)


def _issue(d, ca, name, ext):
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext + "\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-set_serial", str(abs(hash(name)) % (1 << 62)), "-days", "2",
             "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


@pytest.fixture
def certs(tmp_path):
    d = str(tmp_path)
    _make_ca(d, "ca")
    _make_ca(d, "otherca")
    c = {"ca": os.path.join(d, "ca.pem")}
    c["server"] = _issue(d, "ca", "server",
                         "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    c["client"] = _issue(d, "ca", "client", "extendedKeyUsage=clientAuth")
    c["foreign"] = _issue(d, "otherca", "foreign", "extendedKeyUsage=clientAuth")
    return c


def _tls_server(fresh_server, certs, client_ca=True):
    args = ["--tls-cert=%s" % certs["server"][0], "--tls-key=%s" % certs["server"][1]]
    if client_ca:
        args.append("--tls-client-ca=%s" % certs["ca"])
    return fresh_server(transport="tcp", extra_args=args)


def _context(certs, client=None):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    if client:
        ctx.load_cert_chain(*certs[client])
    return ctx


def _storage(srv, ctx):
    host, port = srv.address
    return TLSClientStorage(host=host, port=port, ssl_context=ctx)


@needs_durusbdb
def test_commit_and_load_over_tls_with_client_certificate(fresh_server, certs):
    srv = _tls_server(fresh_server, certs)
    st1 = _storage(srv, _context(certs, "client"))
    assert isinstance(st1.s, ssl.SSLSocket) and st1.s.version() == "TLSv1.3"
    c1 = Connection(st1)
    root = c1.get_root()
    root["tls"] = PersistentDict()
    root["tls"]["greeting"] = "hello over TLS"
    c1.commit()

    st2 = _storage(srv, _context(certs, "client"))
    c2 = Connection(st2)
    assert c2.get_root()["tls"]["greeting"] == "hello over TLS"

    # An update from c2 reaches c1 through the invalidations of S.
    c2.get_root()["tls"]["greeting"] = "updated"
    c2.commit()
    c1.abort()
    assert c1.get_root()["tls"]["greeting"] == "updated"
    st1.close()
    st2.close()
    assert "TLS established" in srv.log_tail(20000)


@needs_durusbdb
def test_clients_without_a_valid_certificate_are_refused(fresh_server, certs):
    srv = _tls_server(fresh_server, certs)
    good = Connection(_storage(srv, _context(certs, "client")))
    good.get_root()["kept"] = 1
    good.commit()

    with pytest.raises(REFUSED):  # no client certificate
        Connection(_storage(srv, _context(certs)))
    with pytest.raises(REFUSED):  # a certificate of another CA
        Connection(_storage(srv, _context(certs, "foreign")))
    with pytest.raises(REFUSED):  # plain text: the stock client
        Connection(ClientStorage(**srv.client_kwargs()))
    untrusting = ssl.create_default_context()  # does not trust the test CA
    with pytest.raises(ssl.SSLError):
        _storage(srv, untrusting)

    # The server keeps serving the good client, and new good clients.
    assert srv.running()
    good.abort()
    assert good.get_root()["kept"] == 1
    again = Connection(_storage(srv, _context(certs, "client")))
    assert again.get_root()["kept"] == 1
    good.get_storage().close()
    again.get_storage().close()
    assert "TLS handshake failed" in srv.log_tail(20000)


@needs_durusbdb
def test_tls_without_client_ca_serves_clients_without_certificates(fresh_server, certs):
    srv = _tls_server(fresh_server, certs, client_ca=False)
    c = Connection(_storage(srv, _context(certs)))
    c.get_root()["anonymous"] = True
    c.commit()
    c.get_storage().close()


def test_tls_client_storage_wants_an_ssl_context():
    with pytest.raises(TypeError):
        TLSClientStorage(ssl_context="not a context")
