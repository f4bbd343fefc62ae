"""What a database driver's error says about a request.

Availability: a lost or refused connection (a PostgreSQL restart, a network blip, an
administrator ending sessions), a statement cancelled by a timeout, a serialization failure or a
deadlock. Each is psycopg's `OperationalError`, alone or wrapped by SQLAlchemy. None of them says
anything about the request itself, and every mutating call is safe to retry with its idempotency
key (it resumes from its last recovery point), so callers are told to retry rather than handed a
bare internal error.

A NUL character: PostgreSQL cannot store one in text, and psycopg refuses to send it. The REST
facade refuses NUL before it reaches the core; an internal gRPC caller's NUL is the caller's
mistake, not an internal error.

An account that does not exist: every row of an account's refers to it (a foreign key named
`fk_<table>_account_id_accounts`), so a row written for an account id no account has is
refused. The REST facade only ever names the account of the key it authenticated; an internal
gRPC caller naming another account is the caller's mistake, not an internal error.

The drivers are looked up among the modules already imported, not imported here: processes
without a database (the api) use the gRPC error mapping too and need not load them.
"""

import re
import sys
from collections.abc import Iterator


def _raised_from(error: BaseException) -> Iterator[BaseException]:
    """`error` and every error it was raised from, each with the driver's error that
    SQLAlchemy's DBAPIError keeps as `orig`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            yield orig
        current = current.__cause__ or current.__context__


def database_unavailable(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, is a database availability error."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    return any(isinstance(e, psycopg.OperationalError) for e in _raised_from(error))


def text_with_nul(error: BaseException) -> bool:
    """True when the driver refused a text value because it holds a NUL character."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    return any(isinstance(e, psycopg.DataError) and "NUL" in str(e) for e in _raised_from(error))


_ACCOUNT_FOREIGN_KEY = re.compile(r"fk_\w+_account_id_accounts")


def unknown_account(error: BaseException) -> bool:
    """True when the database refused a row for naming an account that does not exist."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    return any(
        isinstance(e, psycopg.errors.ForeignKeyViolation)
        and _ACCOUNT_FOREIGN_KEY.fullmatch(e.diag.constraint_name or "") is not None
        for e in _raised_from(error)
    )
