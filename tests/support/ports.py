"""Ports for the servers tests start, apart for each xdist worker.

Asking the kernel for a free port and closing it leaves a window in which another worker's
request can be given the same one, and remit's core shares its port with SO_REUSEPORT when it
runs several copies: two platforms could then split each other's calls. Each worker therefore
takes ports from a band of its own, below the kernel's ephemeral range (which the kernel hands
out for port 0 and for outgoing connections), skipping any port something else holds.
"""

import itertools
import os
import re
import socket

_FIRST_PORT = 20_000
_BAND = 1_000


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    found = re.fullmatch(r"gw(\d+)", worker)
    return int(found.group(1)) if found else 0


# Where in its band a test process starts: a run soon after another does not begin with the
# ports the last one just closed.
_candidates = itertools.count(os.getpid() % _BAND)


def free_port() -> int:
    """A port of this worker's band that is free now on 127.0.0.1."""
    base = _FIRST_PORT + _worker_index() * _BAND
    for _ in range(_BAND):
        port = base + next(_candidates) % _BAND
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}-{base + _BAND - 1}")
