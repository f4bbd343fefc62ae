"""The embedded PostgreSQL servers that `remit serve` uses when no external URL is given.

Each cluster is a real PostgreSQL from the `pgserver` wheel, listening only on a Unix socket in
its own data directory. The vault gets a cluster of its own so that nothing else shares its
database server, its files or its superuser.
"""

import contextlib
import io
import logging
import re
import signal
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import psutil

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
CORE_CLUSTER = "pg-core"
VAULT_CLUSTER = "pg-vault"
# pgserver's name for the log PostgreSQL writes in its data directory.
_SERVER_LOG = "log"
# A line of PostgreSQL's, initdb's or pg_ctl's output that says why it stopped, the most
# telling kind first: the server's own FATAL says more than pg_ctl's "could not start server".
_REASONS: Final = (
    re.compile(r"\b(?:FATAL|PANIC):\s+(.+)"),
    re.compile(r"^(?:postgres|initdb): (?:error: )?(.+)"),
    re.compile(r"^pg_ctl: (.+)"),
)


class EmbeddedDatabaseError(Exception):
    """An embedded PostgreSQL server could not be started: the message says which (its data
    directory), why, and where its log is. `temporary`: it was still starting when pgserver
    stopped waiting (recovery after an unclean stop can take that long), and may be ready
    when started again; otherwise it refused to start, which a retry will not mend."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


@dataclass
class EmbeddedCluster:
    """A running pgserver cluster; `url(db)` names a database on it in SQLAlchemy form."""

    data_dir: Path
    _server: Any

    def url(self, database: str) -> str:
        return to_sqlalchemy_url(self._server.get_uri(database))

    def ensure_database(self, database: str) -> None:
        if not _SAFE_NAME.fullmatch(database):
            raise ValueError(f"unsafe database name {database!r}")
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}';"  # noqa: S608
        exists = self._server.psql(query)
        if "(1 row)" not in exists:
            self._server.psql(f'CREATE DATABASE "{database}";')

    def execute_admin(self, sql: str) -> str:
        return str(self._server.psql(sql))

    def stop(self) -> None:
        self._server.cleanup()


def start_cluster(
    data_dir: Path, *, on_last_exit: Literal["stop", "delete"] | None = "stop"
) -> EmbeddedCluster:
    """Start (or attach to) the cluster stored in `data_dir`, initialising it on first use.

    Several processes may hold the same cluster; `on_last_exit` applies when the last of them
    exits (None leaves it running). An `EmbeddedDatabaseError` when it cannot be started (its
    data directory unusable, PostgreSQL refusing it), saying why in one line.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback is fine.
        warnings.simplefilter("ignore")
        from pgserver import postgres_server

    said: list[str] = []
    running_before = _running_pid(data_dir) is not None
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if (data_dir / "PG_VERSION").exists():
            # PostgreSQL refuses to start on a data directory others may read (0700 or 0750
            # only). Versions before this one left it at 0755 after the first start; put that
            # right.
            data_dir.chmod(0o700)
        else:
            # A new cluster: pgserver runs PostgreSQL as an unprivileged system user when we
            # are root, and that user must be able to reach the directory until it owns it;
            # initdb then narrows the directory to 0700.
            data_dir.chmod(0o755)
        # initdb reports its progress on stdout; it is noise in remit's own output.
        with contextlib.redirect_stdout(io.StringIO()), _pgserver_errors_kept(said):
            server = postgres_server.get_server(data_dir, cleanup_mode=on_last_exit)
    except (OSError, subprocess.SubprocessError) as error:
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL in {data_dir} did not start: {_reason(error, said)} "
            f"(its log: {data_dir / _SERVER_LOG})",
            temporary=isinstance(error, subprocess.TimeoutExpired),
        ) from None
    except BaseException:
        # Interrupted (a second stop request of `remit serve`'s) while pgserver started it:
        # pgserver stops at exit only a server it finished handing out, so one started here
        # would be left running with nobody to stop it.
        if not running_before:
            _stop_half_started(data_dir)
        raise
    log.info("embedded PostgreSQL ready in %s", data_dir)
    return EmbeddedCluster(data_dir=data_dir, _server=server)


def _running_pid(data_dir: Path) -> int | None:
    """The pid of the postmaster running on `data_dir`, as its postmaster.pid says, if any: a
    file left by a server that died names a pid another program may have now, which is no
    postmaster. (psutil comes with pgserver, which uses it the same way.)"""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        return pid if psutil.Process(pid).name() == "postgres" else None
    except (OSError, ValueError, psutil.Error):
        return None


def _stop_half_started(data_dir: Path) -> None:
    """Shut down (fast: no client is connected yet) the postmaster a start cut short left
    running on `data_dir`, waiting a little for it to go."""
    pid = _running_pid(data_dir)
    if pid is None:
        # pg_ctl may have been killed just as the postmaster came up, before it wrote its pid.
        time.sleep(_HALF_STARTED_PID_WAIT_S)
        pid = _running_pid(data_dir)
    if pid is None:
        return
    with contextlib.suppress(psutil.Error):
        postmaster = psutil.Process(pid)
        postmaster.send_signal(signal.SIGINT)
        postmaster.wait(_HALF_STARTED_STOP_WAIT_S)
    log.warning("stopped the embedded PostgreSQL in %s, whose start was interrupted", data_dir)


_HALF_STARTED_PID_WAIT_S: Final = 0.5
_HALF_STARTED_STOP_WAIT_S: Final = 10.0


@contextlib.contextmanager
def _pgserver_errors_kept(said: list[str]) -> Iterator[None]:
    """Keep what pgserver logs as errors in `said` rather than in the log: each is many lines
    (the command line, its output, the whole server log), which `_reason` boils down to one."""
    logger = logging.getLogger("pgserver")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(logging.ERROR)
    propagated = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagated


def _reason(error: OSError | subprocess.SubprocessError, said: list[str]) -> str:
    """Why the server did not start, in one line: the most telling line PostgreSQL, initdb or
    pg_ctl wrote, else what Python said."""
    lines = [line.strip() for message in said for line in message.splitlines()]
    for pattern in _REASONS:
        found = [match.group(1) for line in lines if (match := pattern.search(line))]
        if found:
            return found[-1]
    if isinstance(error, subprocess.TimeoutExpired):
        return f"it was not ready within {error.timeout:.0f}s"
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error)


def to_sqlalchemy_url(url: str) -> str:
    """Accept libpq-style URLs and name the psycopg 3 driver for SQLAlchemy."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URLs must start with postgresql://")
