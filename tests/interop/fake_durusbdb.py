#!/usr/bin/env python3
"""A stand-in for the durusbdb binary built on Durus 4.3's own server.

Only for the reference run of test_shim.py: it lets the shim's process
handling (start, reuse, stop, parent watch, migrate streaming, errors) be
checked against Durus 4.3 when no durusbdb binary is used. It implements:

  serve --dir=DIR --address=PATH (--create | --readonly) [--parent-pid=PID] [other flags ignored]
        a Durus StorageServer over FileStorage DIR/data.durus; SIGTERM or
        the death of PID stops it (removing the socket file)
  migrate --stdin --dir=DIR
        reads (int4 big-endian length, record) frames from stdin and appends
        them to DIR/data.durus as one transaction, streaming; a malformed
        frame fails with a message and status 1
"""

import os
import signal
import struct
import sys
import threading
import time


def parse(args):
    flags = {}
    for arg in args:
        if not arg.startswith("--"):
            sys.exit("fake durusbdb: unexpected argument %r" % arg)
        name, _, value = arg[2:].partition("=")
        flags[name] = value if _ else True
    return flags


def serve(flags):
    from durus.file_storage import FileStorage
    from durus.storage_server import StorageServer, SocketAddress
    directory = flags["dir"]
    if not os.path.isdir(directory):
        sys.exit("fake durusbdb: %s is not a directory" % directory)
    storage = FileStorage(os.path.join(directory, "data.durus"), readonly=bool(flags.get("readonly")))

    def on_term(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    parent = flags.get("parent-pid")
    if parent:
        parent = int(parent)

        def watch():
            while True:
                time.sleep(0.2)
                if os.getppid() != parent:
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

        threading.Thread(target=watch, daemon=True).start()
    address = SocketAddress.new(flags["address"])
    sys.stderr.write("fake durusbdb: serving %s on %s\n" % (directory, address))
    sys.stderr.flush()
    try:
        StorageServer(storage, address=address).serve()
    finally:
        storage.close()


def migrate(flags):
    from durus.file_storage import FileStorage
    directory = flags["dir"]
    storage = FileStorage(os.path.join(directory, "data.durus"))
    stdin = sys.stdin.buffer
    count = [0]

    def frames():
        while True:
            head = stdin.read(4)
            if not head:
                return
            if len(head) < 4:
                raise ValueError("truncated frame header after %d records" % count[0])
            (n,) = struct.unpack(">I", head)
            record = stdin.read(n)
            if len(record) < n:
                raise ValueError("truncated record after %d records" % count[0])
            if n < 12:
                raise ValueError("record %d: %d bytes, shorter than 12" % (count[0], n))
            count[0] += 1
            yield record[:8], record

    try:
        storage.shelf.store(frames())
    except ValueError as e:
        sys.stderr.write("fake durusbdb migrate: %s\n" % e)
        sys.exit(1)
    finally:
        storage.close()
    sys.stderr.write("fake durusbdb migrate: %d records\n" % count[0])


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: fake_durusbdb.py serve|migrate ...")
    command, flags = sys.argv[1], parse(sys.argv[2:])
    if command == "serve":
        serve(flags)
    elif command == "migrate":
        migrate(flags)
    else:
        sys.exit("fake durusbdb: unknown command %r" % command)


if __name__ == "__main__":
    main()
