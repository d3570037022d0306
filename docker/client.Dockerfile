# Python client container for the compose rig: Durus 4.3 from PyPI and the
# interop test suite, run against the server container.
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir durus==4.3 pytest
WORKDIR /src
COPY tests/interop tests/interop
COPY scripts/rig-client.sh scripts/rig-client.sh
ENTRYPOINT ["scripts/rig-client.sh"]
