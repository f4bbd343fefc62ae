"""Whether the platform's databases can be reached, said in words an operator acts on.

A process that starts without its database would report itself ready and then fail every
request; a command would fail with the driver's traceback. Instead each checks its databases
first (connect, `SELECT 1`) and, for each one out of reach, says in one line which database
(its setting, where it is, never its password), which processes need it, and what the server
or the network answered.

Two kinds of failure read differently, as the exit codes say (`remit.command_exits`): the
server answered and refused the URL's user, password or database (the setting is wrong; a
retry will not mend it), or nothing usable answered (refused, timed out, not resolved, the
server starting or shutting down, too many connections: it may pass).
"""

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from remit.config import PlatformConfig, refuse_shared_databases
from remit.core.logging import mask_sensitive
from remit.storage.embedded import to_sqlalchemy_url

# libpq's smallest useful connect timeout is 2 seconds; a database that takes longer than this
# to accept a connection at start is as good as out of reach.
CONNECT_TIMEOUT_S: Final = 10

# What the server answers when the URL's user, password or database is wrong (or the server's
# rules refuse them): the setting needs fixing. libpq reports these without a SQLSTATE, so the
# message is what tells them apart.
_SETTING_REFUSED: Final = re.compile(
    r"authentication failed|does not exist|no pg_hba\.conf entry|permission denied"
    r"|not permitted to log in|no password supplied",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PlatformDatabase:
    """One database of the platform: `name` (core, vault, acquirer), the setting that holds its
    URL, and the processes that cannot run without it."""

    name: str
    setting: str
    url: str
    used_by: tuple[str, ...]

    @property
    def location(self) -> str:
        """Its URL without the password (`postgresql://remit@db:5432/remit_core`)."""
        return location_of(self.url)

    def described(self) -> str:
        users = " and ".join(self.used_by)
        return f"the {self.name} database ({self.setting} {self.location}, needed by {users})"


@dataclass(frozen=True)
class DatabaseFailure:
    """Why `database` could not be used: `reason` is the server's or the network's answer, and
    `setting_refused` says whether the server refused the URL's user, password or database."""

    database: PlatformDatabase
    reason: str
    setting_refused: bool

    @property
    def line(self) -> str:
        if self.setting_refused:
            return f"{self.database.described()} refused the connection: {self.reason}"
        return f"{self.database.described()} is out of reach: {self.reason}"


def core_database(config: PlatformConfig) -> PlatformDatabase:
    return PlatformDatabase(
        "core", "DATABASE_URL", config.require_database_url(), ("core", "worker")
    )


def vault_database(config: PlatformConfig) -> PlatformDatabase:
    return PlatformDatabase(
        "vault", "VAULT_DATABASE_URL", config.require_vault_database_url(), ("vault",)
    )


def acquirer_database(config: PlatformConfig) -> PlatformDatabase:
    return PlatformDatabase(
        "acquirer", "ACQUIRER_DATABASE_URL", config.require_acquirer_database_url(), ("acquirer",)
    )


def platform_databases(config: PlatformConfig) -> list[PlatformDatabase]:
    """Every database of the platform (a `ConfigError` for a URL missing or malformed, or two
    naming one database: `from_env` checks those set, this the embedded ones too)."""
    refuse_shared_databases(config)
    return [core_database(config), vault_database(config), acquirer_database(config)]


class DatabasesUnavailableError(Exception):
    """One or more databases could not be used; `failures` says which and why, one line each."""

    def __init__(self, failures: Sequence[DatabaseFailure]) -> None:
        self.failures = tuple(failures)
        super().__init__("; ".join(failure.line for failure in self.failures))

    @property
    def lines(self) -> list[str]:
        return [failure.line for failure in self.failures]

    @property
    def settings_refused(self) -> bool:
        """Whether a setting must change (a retry alone will not do) for any of them."""
        return any(failure.setting_refused for failure in self.failures)


def location_of(url: str) -> str:
    """Where `url` points, without its user and password: `postgresql://db:5432/remit_core`, or
    `postgresql:///remit_core?host=/run/pg` for a Unix socket."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(a URL that cannot be read)"
    database = parsed.database or ""
    if parsed.host:
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        port = f":{parsed.port}" if parsed.port is not None else ""
        return f"postgresql://{host}{port}/{database}"
    socket_dir = parsed.query.get("host")
    if isinstance(socket_dir, str) and socket_dir:
        return f"postgresql:///{database}?host={socket_dir}"
    return f"postgresql:///{database}"


def failure_of(database: PlatformDatabase, error: BaseException) -> DatabaseFailure:
    """What `error`, raised while using `database`, says about it."""
    reason = unavailability_reason(error)
    return DatabaseFailure(database, reason, _SETTING_REFUSED.search(reason) is not None)


def unavailability_reason(error: BaseException) -> str:
    """The server's or the network's answer in `error` (or in the driver's error it was raised
    from), without the driver's framing: `Connection refused`, `password authentication failed
    for user "remit"`, `failed to resolve host 'db': ...`."""
    driver_error = _driver_error_in(error) or error
    lines = str(driver_error).strip().splitlines()
    if not lines:
        return type(driver_error).__name__
    first = lines[0]
    # psycopg: `connection failed: connection to server at "db" (10.0.0.5), port 5432 failed:
    # FATAL:  ...`; what follows the last "failed: " is what the server or the socket said.
    _, found, answer = first.rpartition("failed: ")
    reason = answer if found and answer.strip() else first
    reason = re.sub(r"^(?:FATAL|ERROR):\s+", "", reason.strip())
    return mask_sensitive(reason)


def _driver_error_in(error: BaseException) -> BaseException | None:
    import psycopg

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, psycopg.Error):
            return current
        orig = getattr(current, "orig", None)
        if isinstance(orig, psycopg.Error):
            return orig
        current = current.__cause__ or current.__context__
    return None


def check_reachable(database: PlatformDatabase, timeout_s: int = CONNECT_TIMEOUT_S) -> None:
    """Connect to `database` and run `SELECT 1`; a `DatabasesUnavailableError` if that fails."""
    failure = _failure(database, timeout_s)
    if failure is not None:
        raise DatabasesUnavailableError([failure])


def check_all_reachable(
    databases: Iterable[PlatformDatabase], timeout_s: int = CONNECT_TIMEOUT_S
) -> None:
    """`check_reachable` for each of `databases` at once (each may take `timeout_s`), with one
    error naming every database that failed."""
    wanted = list(databases)
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        found = list(pool.map(lambda database: _failure(database, timeout_s), wanted))
    failures = [failure for failure in found if failure is not None]
    if failures:
        raise DatabasesUnavailableError(failures)


def _failure(database: PlatformDatabase, timeout_s: int) -> DatabaseFailure | None:
    import psycopg

    # libpq's form of the URL: without SQLAlchemy's driver name.
    from remit.storage.connecting import libpq_arguments

    url = to_sqlalchemy_url(database.url).replace("postgresql+psycopg://", "postgresql://", 1)
    libpq = libpq_arguments(url, connect_timeout_s=max(2, timeout_s))
    try:
        with psycopg.connect(url, autocommit=True, **libpq) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return failure_of(database, error)
    return None
