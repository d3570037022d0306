"""Health check: a Durus protocol round trip (V then S) against the server."""
import socket
import struct
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=2) as s:
    s.sendall(b"V" + struct.pack(">I", 1))
    if s.recv(4) != struct.pack(">I", 1):
        sys.exit(1)
    s.sendall(b"S")
    if len(s.recv(4)) != 4:
        sys.exit(1)
    s.sendall(b".")
