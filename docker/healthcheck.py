"""Docker health check: GET a probe of durusbdb's --metrics listener.

usage: durusbdb-healthcheck [URL]   (default http://127.0.0.1:9297/healthz)

/healthz answers 200 while the storage answers a load of oid 0 within a
second; /readyz answers 200 while commits are accepted (not read-only, not
shutting down, free space above --min-free-space). Exit 0 on 200, else 1
with the server's reason on stderr. The probe writes nothing to the
server's log.
"""
import sys
import urllib.error
import urllib.request

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9297/healthz"
try:
    with urllib.request.urlopen(url, timeout=2) as resp:
        sys.exit(0 if resp.status == 200 else 1)
except urllib.error.HTTPError as e:
    sys.stderr.write("%s: %s %s" % (url, e.code, e.read().decode("utf-8", "replace")))
except (OSError, ValueError) as e:
    sys.stderr.write("%s: %s\n" % (url, e))
sys.exit(1)
