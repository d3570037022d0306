# Python client container for the compose rig: Durus 4.3 from PyPI and the
# interop test suite, run against the server container; with the profile
# "group", the replication group's client (scripts/rig-group-client.py).
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir durus==4.3 pytest
WORKDIR /src
COPY tests/interop tests/interop
COPY scripts/rig-client.sh scripts/rig-client.sh
# The replication group's client (compose profile "group"): the shim's
# ReplicatedConnection, from this checkout (PYTHONPATH=/src/python).
COPY python/berkeleydb_storage python/berkeleydb_storage
COPY scripts/rig-group-client.py scripts/rig-group-client.py
ENTRYPOINT ["scripts/rig-client.sh"]
