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

An operator's database URL may set any of these itself (`?connect_timeout=20`, say): the URL's
value is kept. Given to the driver, a keyword would replace it.
"""

from typing import Any, Final

from sqlalchemy import make_url

from remit.config import database_connect_timeout_s
from remit.storage.embedded import to_sqlalchemy_url

KEEPALIVES_IDLE_S: Final = 10
KEEPALIVES_INTERVAL_S: Final = 5
KEEPALIVES_COUNT: Final = 3
# How long a connection whose server went silent lasts: the keepalives' wait, in milliseconds.
TCP_USER_TIMEOUT_MS: Final = (KEEPALIVES_IDLE_S + KEEPALIVES_INTERVAL_S * KEEPALIVES_COUNT) * 1000


def libpq_arguments(url: str, *, connect_timeout_s: int | None = None) -> dict[str, Any]:
    """The libpq keywords a connection to `url` is opened with (the module's docstring says
    why), less those the URL sets itself. `connect_timeout_s`: instead of the configured
    REMIT_DATABASE_CONNECT_TIMEOUT_S (a check of its own that waits longer)."""
    arguments: dict[str, Any] = {
        "connect_timeout": (
            database_connect_timeout_s() if connect_timeout_s is None else connect_timeout_s
        ),
        "keepalives": 1,
        "keepalives_idle": KEEPALIVES_IDLE_S,
        "keepalives_interval": KEEPALIVES_INTERVAL_S,
        "keepalives_count": KEEPALIVES_COUNT,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    }
    given = url_parameters(url)
    return {key: value for key, value in arguments.items() if key not in given}


def url_parameters(url: str) -> frozenset[str]:
    """The names of the parameters `url`'s query gives (`?connect_timeout=20&options=...`)."""
    return frozenset(make_url(to_sqlalchemy_url(url)).query)
