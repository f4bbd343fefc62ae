"""Migrations wait only briefly for a lock on a table, and are tried again.

DDL such as `ALTER TABLE ... ADD COLUMN` needs an ACCESS EXCLUSIVE lock on its table. If a long
transaction holds any lock there, the ALTER waits in the table's lock queue, and every read and
write of the table that arrives meanwhile queues behind the ALTER: payments stop for as long as
that transaction lasts. So each transaction a migration runs in starts with a short
`lock_timeout`, set with `SET LOCAL` so that it ends with the transaction and never stays on
the session. A migration that runs out of it is rolled back and run again after a pause, which
lets the reads and writes that queued behind it through and gives the long transaction time to
end; the pauses grow, and after the last attempt the upgrade fails saying what was in the way.
A migration that PostgreSQL rolled back to break a deadlock (a table lock it took while a
writer of the table waited for another it held, or a concurrent index build waiting on a
session that waited on the migrator) is run again the same way: the other side of the deadlock
has gone on meanwhile.

Statements outside a transaction block, such as the concurrent index builds of
`remit.storage.online_index`, run without the limit: the lock such a build takes blocks no
reads or writes, and it waits for every older transaction to end, which PostgreSQL counts as a
lock wait too, so a timeout would cut the build short and leave an invalid index behind.

Migrators of one database take turns on an advisory lock (`wait_for_migration_lock`). The ones
waiting for it ask for it again and again with `pg_try_advisory_lock` rather than wait inside
`pg_advisory_lock`: a session waiting inside a statement holds that statement's snapshot, and a
concurrent index build of the migrator holding the lock waits for every older snapshot to go,
so each would wait for the other until PostgreSQL broke the deadlock by cancelling the build.
Between tries the waiting session has no transaction open, and so no snapshot.
"""

import logging
import re
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from alembic import context
from psycopg import sql
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError

from remit.config import migration_lock_attempts, migration_lock_timeout_s

log = logging.getLogger(__name__)

_LONGEST_STATEMENT_SHOWN = 200
# How long a migrator waits between two tries of the migration lock: short next to any
# migration run, long enough that the tries cost the server nothing.
MIGRATION_LOCK_POLL_S = 0.2
# The sessions holding the advisory lock `pg_try_advisory_lock(key)` takes in this database: a
# bigint key is held as its high and low 32 bits (classid, objid) with objsubid 1.
_MIGRATION_LOCK_HOLDERS = sa.text(
    "SELECT a.pid, a.application_name, a.client_addr::text AS client, a.backend_start, "
    "a.state, a.query FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
    "WHERE l.locktype = 'advisory' AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid::text::bigint = :high AND l.objid::text::bigint = :low AND l.objsubid = 1"
)
# Lists the sessions holding a lock on a table, oldest transaction first.
_FIND_THE_HOLDERS = (
    "SELECT a.pid, a.state, a.xact_start, a.query FROM pg_locks l "
    "JOIN pg_stat_activity a USING (pid) WHERE l.relation = 'TABLE'::regclass "
    "ORDER BY a.xact_start"
)


@dataclass(frozen=True)
class LockRetryPolicy:
    # How long one statement may wait for a lock (0: no limit), and how many times a migration
    # is run in all before the upgrade gives up.
    timeout_s: float
    attempts: int

    @classmethod
    def from_env(cls) -> "LockRetryPolicy":
        return cls(timeout_s=migration_lock_timeout_s(), attempts=migration_lock_attempts())

    def pause_after(self, failures: int) -> float:
        """The pause before the next attempt of a migration that has timed out `failures`
        times: a timeout's length more each time, so that the table serves its traffic at least
        as long between attempts as it waited during one, and longer as they go on."""
        return failures * self.timeout_s


class MigrationLockTimeoutError(Exception):
    """A migration could not lock a table it changes in any of its attempts; the message names
    the migration and says how to find the transaction that held the lock. Like its subclass,
    a temporary failure: the same command may pass once what was in the way has ended."""


class MigratorWaitTimeoutError(MigrationLockTimeoutError):
    """Another migrator of the database held the migration lock for longer than this one
    waits for it (REMIT_MIGRATOR_WAIT_S); the message names the session holding it."""


def wait_for_migration_lock(connection: Connection, key: int, wait_s: float) -> None:
    """Take the session-level advisory lock `key` that serialises the database's migrators,
    waiting for another migrator to let it go for at most `wait_s` seconds (0: no limit).

    `connection` must have no transaction open. It asks in autocommit, each try a transaction
    of its own, so that while it waits the session is `idle` and holds no snapshot for another
    migrator's concurrent index build to wait for (the module's docstring says why)."""
    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        _wait_for(connection, key, wait_s)
    finally:
        connection.execution_options(isolation_level=connection.default_isolation_level)


def _wait_for(connection: Connection, key: int, wait_s: float) -> None:
    # The key written out, not a parameter: pg_stat_activity then shows which lock a waiting
    # migrator asks for.
    try_lock = sa.text(f"SELECT pg_try_advisory_lock({int(key)})")
    started = time.monotonic()
    waiting = False
    while True:
        taken = bool(connection.execute(try_lock).scalar_one())
        # Ends SQLAlchemy's transaction, which in autocommit sends nothing; the lock is the
        # session's, and the isolation level may change only between transactions.
        connection.commit()
        if taken:
            if waiting:
                log.info("the other migrator is done; migrating")
            return
        if not waiting:
            waiting = True
            log.info(
                "another migrator holds the migration lock (%s): waiting for it to finish%s",
                _describe_holders(connection, key),
                f" (at most {wait_s:g}s)" if wait_s else "",
            )
        if wait_s and time.monotonic() - started >= wait_s:
            holders = _describe_holders(connection, key)
            raise MigratorWaitTimeoutError(
                f"another migrator of this database held the migration lock (advisory lock "
                f"{key}) through the {wait_s:g}s this one waits for it: {holders}. If it is "
                "still migrating (its query in pg_stat_activity changes as it goes, an index "
                "build on a big table takes long), run this one again once it is done, or "
                "let it wait longer with REMIT_MIGRATOR_WAIT_S (0: no limit); if it is stuck, "
                "pg_terminate_backend(pid) ends it, and the next run takes up the migration "
                "it left unfinished."
            )
        time.sleep(MIGRATION_LOCK_POLL_S)


def _describe_holders(connection: Connection, key: int) -> str:
    rows = connection.execute(
        _MIGRATION_LOCK_HOLDERS, {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}
    ).all()
    connection.commit()
    if not rows:
        # It let the lock go between the try and this look.
        return "it has just let it go"
    described = []
    for row in rows:
        query = " ".join(str(row.query or "").split())
        if len(query) > _LONGEST_STATEMENT_SHOWN:
            query = query[:_LONGEST_STATEMENT_SHOWN] + " ..."
        described.append(
            f"pid {row.pid}, application_name {row.application_name!r}, client "
            f"{row.client or 'local'}, connected since {row.backend_start}, {row.state}, "
            f"last query: {query}"
        )
    return "; ".join(described)


def run_with_lock_retries(connection: Connection, policy: LockRetryPolicy) -> None:
    """Run the migrations Alembic's command asks for (the context is configured with one
    transaction per migration on `connection`), each transaction under `policy.timeout_s`, and
    run again a migration that timed out waiting for a lock, up to `policy.attempts` times."""
    _refuse_relative_destination(context.get_revision_argument())
    blocked: str | None = None
    failures = 0
    with lock_timeout_in_each_transaction(connection, policy.timeout_s):
        while True:
            try:
                with context.begin_transaction():
                    context.run_migrations()
                connection.commit()
                return
            except DBAPIError as error:
                # 55P03 (lock_timeout) and 40P01 (a deadlock PostgreSQL broke by rolling this
                # migration back): both say only that another transaction was in the way.
                if not isinstance(
                    error.orig, (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)
                ):
                    raise
                # The migration's transaction is rolled back; those before it are committed,
                # so running the migrations again starts from this one.
                connection.rollback()
                migration = _migration_that_raised(error)
                failures = failures + 1 if migration == blocked else 1
                blocked = migration
                if failures >= policy.attempts:
                    raise MigrationLockTimeoutError(
                        _explanation(migration, error, policy)
                    ) from error
                pause = policy.pause_after(failures)
                log.warning(
                    "migration %s %s; running it again in %gs (attempt %d of %d)",
                    migration or "(unknown)",
                    _what_stopped(error, policy),
                    pause,
                    failures + 1,
                    policy.attempts,
                )
                time.sleep(pause)


def _refuse_relative_destination(destination: object) -> None:
    """A run is repeated from the version table after a lock timeout, so a destination counted
    from where the run starts ("-1", "head-2", "+1") would be counted again from where the
    failed attempt stopped, and go too far: a downgrade would drop one migration more."""
    destinations = destination if isinstance(destination, tuple) else (destination,)
    for one in destinations:
        if isinstance(one, str) and re.search(r"[+-]\d+$", one):
            raise ValueError(
                f"migrations run to an absolute revision, not {one!r}: name the revision"
            )


@contextmanager
def lock_timeout_in_each_transaction(connection: Connection, timeout_s: float) -> Iterator[None]:
    """Each transaction `connection` begins meanwhile first sets its `lock_timeout` (`SET
    LOCAL`); statements run outside a transaction block keep the session's."""
    milliseconds = round(timeout_s * 1000)
    statement = sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(milliseconds))

    def set_lock_timeout(begun: Connection) -> None:
        driver = begun.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        # In Alembic's `autocommit_block` there is no transaction for the setting to last for.
        if not driver.autocommit:
            # SQLAlchemy is still beginning its transaction, so the statement goes to the
            # driver, which opens the database's transaction with it.
            driver.execute(statement)

    event.listen(connection, "begin", set_lock_timeout)
    try:
        yield
    finally:
        event.remove(connection, "begin", set_lock_timeout)


def _migration_that_raised(error: BaseException) -> str | None:
    """The revision whose upgrade or downgrade raised `error`, found by its file among the
    failure's frames: Alembic does not say which migration it was running."""
    revisions = {
        Path(script.path).resolve(): script.revision for script in context.script.walk_revisions()
    }
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        revision = revisions.get(Path(frame.filename).resolve())
        if revision is not None:
            return revision
    return None


def _what_stopped(error: DBAPIError, policy: LockRetryPolicy) -> str:
    if isinstance(error.orig, psycopg.errors.DeadlockDetected):
        return "was rolled back to break a deadlock with another transaction"
    return f"waited {policy.timeout_s:g}s for a lock another transaction holds on its table"


def _explanation(migration: str | None, error: DBAPIError, policy: LockRetryPolicy) -> str:
    statement = " ".join(str(error.statement or "").split())
    if len(statement) > _LONGEST_STATEMENT_SHOWN:
        statement = statement[:_LONGEST_STATEMENT_SHOWN] + " ..."
    if isinstance(error.orig, psycopg.errors.DeadlockDetected):
        # Which transactions took part is in the error's detail, in PostgreSQL's words.
        detail = " ".join(str(error.orig.diag.message_detail or "").split())
        return (
            f"migration {migration or '(unknown)'} was rolled back to break a deadlock with "
            f"another transaction in each of its {policy.attempts} attempts, the last while "
            f"it ran: {statement} ({detail}). Run the migrations again when the database is "
            "quieter, or with the processes writing the tables it changes stopped. "
            "REMIT_MIGRATION_LOCK_ATTEMPTS sets the attempts."
        )
    return (
        f"migration {migration or '(unknown)'} could not lock a table it changes: another "
        f"transaction held a lock on that table through {policy.attempts} attempts, each "
        f"waiting {policy.timeout_s:g}s (the statement waiting was: {statement}). Find that "
        "transaction in pg_stat_activity (a long-running or 'idle in transaction' session, "
        f"by xact_start) and the locks it holds in pg_locks, e.g. {_FIND_THE_HOLDERS}; once "
        "it has ended (pg_terminate_backend(pid) ends it), run the migrations again. "
        "REMIT_MIGRATION_LOCK_TIMEOUT_S sets the wait and REMIT_MIGRATION_LOCK_ATTEMPTS the "
        "attempts."
    )
