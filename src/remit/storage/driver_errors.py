"""What a database driver's error says about a request.

psycopg files very different errors under `OperationalError` (alone or wrapped by SQLAlchemy),
so its SQLSTATE is what tells them apart (`database_fault`):

- Temporary: a lost or refused connection (a PostgreSQL restart, a network blip, an
  administrator ending sessions, too many connections), a statement cancelled by a timeout or
  a lock not granted in time, a serialization failure or a deadlock. None of them says anything
  about the request itself, and every mutating call is safe to retry with its idempotency key
  (it resumes from its last recovery point), so callers are told to retry rather than handed a
  bare internal error.
- Out of resources: a full disk, memory or another of the server's resources exhausted, an I/O
  error. Not the request's fault either, but nothing says a retry in a moment will find them
  back: it takes an operator, so callers are not told to retry, lest they do so in a loop.
- Over a limit of the database (SQLSTATE class 54: an index row too large, a statement too
  complex): the same request fails the same way every time, so it is never temporary.

A connection not had in time: every one of the process's connections in use for as long as a
unit of work waits for one (SQLAlchemy's pool's `TimeoutError`, the direct pool's
`ConnectionWaitTimeoutError`). The database is not keeping up with the load; the request did not
start, so it is temporary like a refused connection, and callers are told to retry (after
their backoff) rather than queue.

Any other `OperationalError` (a dropped database, a file missing from the data directory, a
trigger protocol broken) is a fault of remit's or of its deployment: an internal error.

Refused for its values (`refused_for_its_values`): a data exception (SQLSTATE class 22: a
number out of its type's range, say) or one of the database's limits (class 54). Nothing
about the database's state or health: the same statement with the same values fails the same
way however often it is run, so work that runs again by itself (a periodic task) sets the item
aside rather than trying it again and again.

A NUL character: PostgreSQL cannot store one in text, and psycopg refuses to send it. The REST
facade refuses NUL before it reaches the core; an internal gRPC caller's NUL is the caller's
mistake, not an internal error.

A table that does not exist (SQLSTATE 42P01): a database whose migrations were not applied, or
not all of them; a process that finds it so as it starts says to run `remit migrate`.

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
from enum import Enum
from typing import Final


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


class DatabaseFault(Enum):
    """What a database error says about the request it failed: see the module's docstring."""

    TEMPORARY = "temporary"
    OUT_OF_RESOURCES = "out_of_resources"
    OVER_LIMIT = "over_limit"


_TEMPORARY_STATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "57P05",  # idle_session_timeout
    }
)
_TEMPORARY_CLASS: Final = "08"  # connection_exception
_OUT_OF_RESOURCES_STATES: Final = frozenset(
    {
        "53000",  # insufficient_resources
        "53100",  # disk_full
        "53200",  # out_of_memory
        "53400",  # configuration_limit_exceeded
        "58000",  # system_error
        "58030",  # io_error
    }
)
_OVER_LIMIT_CLASS: Final = "54"  # program_limit_exceeded


# Of the temporary faults, those that fail every request alike until they pass: the server
# out of reach (no answer, so no SQLSTATE), shutting down, starting up, out of connections, or
# the connection lost. The others (a deadlock, a timeout, a serialization failure) are one
# statement's, among others that go through.
_OUT_OF_REACH_STATES: Final = frozenset({"53300", "57P01", "57P02", "57P03"})


class ConnectionWaitTimeoutError(Exception):
    """No connection of a pool came free within the time a unit of work waits for one."""


def pool_wait_timed_out(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, is a wait for a pooled connection
    that ran out: SQLAlchemy's pool's or the direct pool's."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    pool_timeout = getattr(sqlalchemy_exc, "TimeoutError", ConnectionWaitTimeoutError)
    return any(
        isinstance(raised, (ConnectionWaitTimeoutError, pool_timeout))
        for raised in _raised_from(error)
    )


def database_fault(error: BaseException) -> DatabaseFault | None:
    """What the first `OperationalError` that `error` is, or was raised from, says about the
    request (a pooled connection not had in time: temporary); None for none, or for one that
    is remit's own fault."""
    if pool_wait_timed_out(error):
        return DatabaseFault.TEMPORARY
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return None
    for raised in _raised_from(error):
        if isinstance(raised, psycopg.OperationalError):
            return _fault_of(raised, pipeline_aborted=psycopg.errors.PipelineAborted)
    return None


def database_out_of_reach(error: BaseException) -> bool:
    """True when `error` is a temporary fault that fails every request alike while it lasts
    (the server out of reach, restarting, out of connections): an outage, not one statement's
    bad luck."""
    if database_fault(error) is not DatabaseFault.TEMPORARY or pool_wait_timed_out(error):
        return False
    psycopg = sys.modules["psycopg"]  # (a fault was found: it is loaded)
    for raised in _raised_from(error):
        if isinstance(raised, psycopg.OperationalError):
            state = getattr(raised, "sqlstate", None)
            return (
                state is None or state.startswith(_TEMPORARY_CLASS) or state in _OUT_OF_REACH_STATES
            )
    return False


def _fault_of(
    error: BaseException, *, pipeline_aborted: type[BaseException]
) -> DatabaseFault | None:
    state = getattr(error, "sqlstate", None)
    if state is None:
        # No answer from the server to read one from: the connection could not be made or was
        # lost, or the wait for it ran out. (A pipeline aborted by an earlier statement has
        # none either, and is that statement's failure, not the connection's.)
        return None if isinstance(error, pipeline_aborted) else DatabaseFault.TEMPORARY
    if state in _TEMPORARY_STATES or state.startswith(_TEMPORARY_CLASS):
        return DatabaseFault.TEMPORARY
    if state in _OUT_OF_RESOURCES_STATES:
        return DatabaseFault.OUT_OF_RESOURCES
    if state.startswith(_OVER_LIMIT_CLASS):
        return DatabaseFault.OVER_LIMIT
    return None


# SQLSTATE classes of a statement refused for the values it was given (see the docstring).
_REFUSED_FOR_ITS_VALUES_CLASSES: Final = ("22", _OVER_LIMIT_CLASS)


def refused_for_its_values(error: BaseException) -> str | None:
    """The SQLSTATE when the first database error that `error` is, or was raised from, refused
    its statement for the values it was given; None otherwise."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return None
    for raised in _raised_from(error):
        if isinstance(raised, psycopg.Error):
            state = raised.sqlstate
            return state if state and state.startswith(_REFUSED_FOR_ITS_VALUES_CLASSES) else None
    return None


def database_unavailable(error: BaseException) -> bool:
    """True when `error`, or an error it was raised from, says the database cannot do the work
    for now, through no fault of the work: a temporary fault, or one of its resources
    exhausted. Work that is tried again later (a periodic task, the completer, a command run
    again) waits for it to pass; a caller is told to retry only when it is temporary."""
    return database_fault(error) in (DatabaseFault.TEMPORARY, DatabaseFault.OUT_OF_RESOURCES)


def text_with_nul(error: BaseException) -> bool:
    """True when the driver refused a text value because it holds a NUL character."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    return any(isinstance(e, psycopg.DataError) and "NUL" in str(e) for e in _raised_from(error))


def missing_table(error: BaseException) -> bool:
    """True when the database refused a statement for naming a table it does not have."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return False
    return any(isinstance(e, psycopg.errors.UndefinedTable) for e in _raised_from(error))


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
