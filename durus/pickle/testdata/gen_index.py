"""DFS20 index pickles for the index codec tests (PROTOCOL.md sections 11.3, 11.4).

usage:
  python gen_index.py write DIR [PROTO...]
                                  write DIR/index.p<N> for every protocol this
                                  Python has (Python 2: 0-2, byte-string keys;
                                  Python 3: 0-highest, bytes keys) and
                                  DIR/expected.txt ("oid offset" lines)
  python gen_index.py load FILE   unpickle FILE as Durus's FileStorage2 does
                                  and print "oid offset" lines, sorted
"""
import pickle
import struct
import sys

from durus.utils import dumps, loads  # cPickle on Python 2, as Durus uses


def oid_bytes(n):
    return struct.pack(">Q", n)


def entries():
    oids = [0, 1, 2, 0x27, 0x22, 0x2722, 0x5C, 0x0A, 0x0D, 0x7F, 0x80, 0xFF,
            0x2780, 0x225C27, 2**32, 2**40 + 0xC3BF, 0x8081828384858687,
            2**64 - 1, 0x00FF00FF00FF00FF, 0x5C785C30]
    oids += list(range(1000, 3100))  # more than two batches of 1000
    out = []
    for i, oid in enumerate(oids):
        offset = 14 + 37 * i
        if i % 7 == 3:
            offset = 2**31 + i
        if i % 11 == 5:
            offset = 2**40 + i
        if i % 13 == 6:
            offset = 255 + i % 3
        out.append((oid, offset))
    return out


def write(d, protos=None):
    index = dict((oid_bytes(o), v) for o, v in entries())
    with open(d + "/expected.txt", "w") as f:
        for o, v in sorted(entries()):
            f.write("%d %d\n" % (o, v))
    for proto in protos or range(pickle.HIGHEST_PROTOCOL + 1):
        with open(d + "/index.p%d" % proto, "wb") as f:
            f.write(dumps(index, proto))


def load(path):
    with open(path, "rb") as f:
        tmp = loads(f.read())
    out = []
    for k, v in tmp.items():
        if not isinstance(k, bytes):
            k = k.encode("latin1")
        out.append((struct.unpack(">Q", k)[0], v))
    for o, v in sorted(out):
        sys.stdout.write("%d %d\n" % (o, v))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], [int(p) for p in sys.argv[3:]])
    else:
        load(sys.argv[2])
