"""One client scenario (commit, load, conflict, pack) with a stock client.

Run by test_scenario.py with Durus 4.3 on Python 3 (PROTOCOL.md C70)
against a fresh database:

    python client_scenario.py HOST PORT      or      python client_scenario.py PATH

Prints "scenario ok" and exits 0, or fails with a traceback.
"""
from __future__ import print_function

import sys
import time

from durus.client_storage import ClientStorage
from durus.connection import Connection
from durus.error import ConflictError, DurusKeyError, ReadConflictError
from durus.persistent import Persistent
from durus.persistent_dict import PersistentDict
from durus.persistent_list import PersistentList


def storage():
    if len(sys.argv) == 3:
        return ClientStorage(host=sys.argv[1], port=int(sys.argv[2]))
    return ClientStorage(address=sys.argv[1])


def main():
    # commit
    a = Connection(storage())
    ra = a.get_root()
    ra['d'] = PersistentDict()
    ra['d']['x'] = 1
    ra['p'] = Persistent()
    ra['p'].text = u'\xe9t\xe9 \u2603'
    ra['p'].data = b'\x00\x01\xff' * 1000
    ra['l'] = PersistentList(range(100))
    ra['gone'] = Persistent()
    a.commit()

    # load, from a second client
    b = Connection(storage())
    rb = b.get_root()
    assert rb['d']['x'] == 1
    assert rb['p'].text == u'\xe9t\xe9 \u2603'
    assert rb['p'].data == b'\x00\x01\xff' * 1000
    assert list(rb['l']) == list(range(100))

    # conflict: both change d, a commits first
    ra['d']['x'] = 2
    assert len(rb['d']) == 1
    rb['d']['y'] = 3
    a.commit()
    try:
        b.commit()
    except ConflictError:
        pass
    else:
        raise AssertionError('no ConflictError for the second committer')
    b.abort()
    assert rb['d']['x'] == 2
    rb['d']['y'] = 3
    b.commit()
    a.abort()
    assert dict(ra['d'].items()) == {'x': 2, 'y': 3}

    # pack: the unreachable object goes, the rest stays
    gone = ra['gone']._p_oid
    del ra['gone']
    a.commit()
    a.pack()
    s = a.get_storage()
    deadline = time.time() + 5
    while True:
        try:
            s.load(gone)
        except ReadConflictError:
            s.sync()
        except DurusKeyError:
            break
        if time.time() > deadline:
            raise AssertionError('packed object still loadable after 5 s')
        time.sleep(0.05)
    c = Connection(storage())
    rc = c.get_root()
    assert rc['p'].text == u'\xe9t\xe9 \u2603'
    assert dict(rc['d'].items()) == {'x': 2, 'y': 3}
    assert 'gone' not in rc
    print('scenario ok: python %s' % sys.version.split()[0])


if __name__ == '__main__':
    main()
