"""freeports.py N: print N distinct free 127.0.0.1 TCP ports on one line.

Every socket stays bound until all N are chosen: a port closed and asked
for again can come back at once, so asking once per port can hand the same
port to two servers (the Go tests use internal/freeport for the same
reason).
"""
import socket
import sys


def main() -> None:
    n = int(sys.argv[1])
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    print(*[s.getsockname()[1] for s in socks])
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
