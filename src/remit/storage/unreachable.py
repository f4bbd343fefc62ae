"""Whether an error means the database could not serve a request just now.

A lost or refused connection (a PostgreSQL restart, a network blip, an administrator ending
sessions), a statement cancelled by a timeout, a serialization failure or a deadlock: each is
psycopg's `OperationalError`, alone or wrapped by SQLAlchemy. None of them says anything about
the request itself, and every mutating call is safe to retry with its idempotency key (it
resumes from its last recovery point), so callers are told to retry rather than handed a bare
internal error.

The drivers are looked up among the modules already imported, not imported here: processes
without a database (the api) use the gRPC error mapping too and need not load them.
"""

import sys


def database_unavailable(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, is a database availability error."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # SQLAlchemy's DBAPIError keeps the driver's error as `orig`.
        for candidate in (current, getattr(current, "orig", None)):
            if isinstance(candidate, psycopg.OperationalError):
                return True
        current = current.__cause__ or current.__context__
    return False
