"""What every connection to a database is opened with, so that none can hang on a lost network.

A database host that is out of reach because packets to it are dropped (a network partition, a
host gone without closing its connections), rather than refused, gives a client no answer at
all. Left to the kernel, a connection attempt then waits for its TCP timeouts (minutes; psycopg
stops async ones at 130 s), a statement sent on a connection whose server is gone waits for its
unacknowledged bytes to be retransmitted for about a quarter of an hour, and a connection that
waits for an answer (a LISTEN for notifications, a long statement) waits for ever: requests and
pool slots are held all that time, and the process never notices that its database is gone.

So every connection the services, the worker and the admin commands open asks libpq for:

- `connect_timeout` (REMIT_DATABASE_CONNECT_TIMEOUT_S, `config.database_connect_timeout_s`):
  an attempt that takes longer fails;
- TCP keepalives: a connection with nothing to send (waiting on a statement's answer or for a
  notification) is probed after `KEEPALIVES_IDLE_S` of silence, and given up after
  `KEEPALIVES_COUNT` probes `KEEPALIVES_INTERVAL_S` apart go unanswered;
- `tcp_user_timeout`: bytes sent and not acknowledged for as long fail the connection too (the
  keepalives probe only a connection with nothing in flight). On Linux it also bounds the
  keepalives' own wait, so it is set to theirs, and the two agree.

A connection that fails so fails with the driver's `OperationalError` without a SQLSTATE, which
`remit.storage.driver_errors` reads as the database being out of reach: a temporary fault,
retried by the caller and logged as an outage (`remit.storage.outages`). Keepalives and the user
timeout apply to TCP connections only; a Unix socket does not need them.

An operator's database URL may set any of these itself (`?connect_timeout=20`, say), as may the
connection service it names (`?service=`, PGSERVICE) and, for `connect_timeout`, the
environment (PGCONNECT_TIMEOUT): the operator's value is kept, since a keyword given to the
driver would replace it. An operator who sets any of the keepalive keys or the user timeout sets
them all: none of ours is added beside theirs, or the two would no longer agree (with
`keepalives=0` our user timeout would still apply; with a longer `keepalives_idle`, Linux would
give up the connection at our user timeout with a probe outstanding).

Migrations and the long admin commands wait longer (`LONG_KEEPALIVES`, 5 minutes) than the
services (`SERVICE_KEEPALIVES`, 25 s): an index built concurrently for hours should not be left
INVALID by a blip of the network.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from os import environ
from pathlib import Path
from typing import Any, Final

from sqlalchemy import make_url

from remit.config import database_connect_timeout_s
from remit.storage.embedded import to_sqlalchemy_url


@dataclass(frozen=True)
class Keepalives:
    """When a silent connection is probed (`idle_s`), how often (`interval_s`), how many
    unanswered probes give it up (`count`); the user timeout is set to the same wait."""

    idle_s: int
    interval_s: int
    count: int

    @property
    def user_timeout_ms(self) -> int:
        return (self.idle_s + self.interval_s * self.count) * 1000


# The services, the worker and the short admin commands: a dead connection fails within 25 s.
SERVICE_KEEPALIVES: Final = Keepalives(idle_s=10, interval_s=5, count=3)
# Migrations (an index built concurrently may take hours) and the long admin commands: a
# network blip shorter than 5 minutes does not kill the connection (and leave an INVALID index).
LONG_KEEPALIVES: Final = Keepalives(idle_s=60, interval_s=30, count=8)

KEEPALIVES_IDLE_S: Final = SERVICE_KEEPALIVES.idle_s
KEEPALIVES_INTERVAL_S: Final = SERVICE_KEEPALIVES.interval_s
KEEPALIVES_COUNT: Final = SERVICE_KEEPALIVES.count
# How long a connection whose server went silent lasts: the keepalives' wait, in milliseconds.
TCP_USER_TIMEOUT_MS: Final = SERVICE_KEEPALIVES.user_timeout_ms

# Set together or not at all: libpq has no environment variable for any of them.
KEEPALIVE_KEYS: Final = frozenset(
    {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"}
)


def libpq_arguments(
    url: str,
    *,
    connect_timeout_s: int | None = None,
    keepalives: Keepalives = SERVICE_KEEPALIVES,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The libpq keywords a connection to `url` is opened with (the module's docstring says
    why), less those the operator sets: a keyword given to the driver overrides the URL, the
    connection service file and the environment alike. `connect_timeout_s`: instead of the
    configured REMIT_DATABASE_CONNECT_TIMEOUT_S (a check of its own that waits longer).
    `keepalives`: how long a silent connection lasts. `env`: instead of the process's."""
    env = environ if env is None else env
    given = operator_parameters(url, env)
    arguments: dict[str, Any] = {}
    if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in env:
        arguments["connect_timeout"] = (
            database_connect_timeout_s() if connect_timeout_s is None else connect_timeout_s
        )
    # Any one of the keepalive keys set leaves all to the operator: ours mixed with theirs
    # would disagree (a user timeout shorter than their probes' wait, or one that outlives
    # keepalives they turned off).
    if not given & KEEPALIVE_KEYS:
        arguments |= {
            "keepalives": 1,
            "keepalives_idle": keepalives.idle_s,
            "keepalives_interval": keepalives.interval_s,
            "keepalives_count": keepalives.count,
            "tcp_user_timeout": keepalives.user_timeout_ms,
        }
    return arguments


def url_parameters(url: str) -> frozenset[str]:
    """The names of the parameters `url`'s query gives (`?connect_timeout=20&options=...`)."""
    return frozenset(make_url(to_sqlalchemy_url(url)).query)


def operator_parameters(url: str, env: Mapping[str, str]) -> frozenset[str]:
    """The names of the parameters `url` gives, with those of the connection service it names
    (`?service=`, or PGSERVICE), as libpq reads them from the service file."""
    query = make_url(to_sqlalchemy_url(url)).query
    service = query.get("service", env.get("PGSERVICE"))
    if isinstance(service, tuple):
        service = service[-1]
    if not service:
        return frozenset(query)
    return frozenset(query) | service_parameters(service, env)


def service_parameters(service: str, env: Mapping[str, str]) -> frozenset[str]:
    """The names of the parameters service `service` sets, from the first file that defines it:
    PGSERVICEFILE (or ~/.pg_service.conf), then PGSYSCONFDIR's pg_service.conf, as libpq looks.
    libpq's built-in system directory is not known here: a service defined only there is
    read as setting nothing."""
    files = [Path(env["PGSERVICEFILE"]) if "PGSERVICEFILE" in env else _home() / ".pg_service.conf"]
    if "PGSYSCONFDIR" in env:
        files.append(Path(env["PGSYSCONFDIR"]) / "pg_service.conf")
    for file in files:
        found = _read_service(file, service)
        if found is not None:
            return found
    return frozenset()


def _home() -> Path:
    try:
        return Path.home()
    except RuntimeError:
        return Path("/nonexistent")


def _read_service(file: Path, service: str) -> frozenset[str] | None:
    """The keys of `service`'s section of `file`; None if the file or the section is not there."""
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    keys: set[str] | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if keys is not None:
                break
            if line.rstrip("]")[1:] == service:
                keys = set()
        elif keys is not None and "=" in line:
            keys.add(line.split("=", 1)[0].strip())
    return None if keys is None else frozenset(keys)
