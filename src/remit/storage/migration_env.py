"""What every migration tree's env.py runs: one migrator at a time per database, each migration
in a transaction of its own, none waiting long for a table's lock
(`remit.storage.migration_locks`)."""

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from remit.config import migrator_wait_s
from remit.storage.connecting import LONG_KEEPALIVES, libpq_arguments
from remit.storage.migration_locks import (
    LockRetryPolicy,
    run_with_lock_retries,
    wait_for_migration_lock,
)


def run_migrations_online(lock_key: int) -> None:
    """Migrate the database of the Alembic config's URL, serialised with every other migrator of
    that database on the advisory lock `lock_key`."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=migration_arguments(url))
    with engine.connect() as connection:
        run_migrations_on(connection, lock_key)


def migration_arguments(url: str) -> dict[str, object]:
    """The libpq keywords a migrator connects with: the connect timeout of every connection,
    but the long keepalives' wait (`connecting.LONG_KEEPALIVES`), so that a short loss of the
    network does not fail an index being built concurrently for hours, and leave it INVALID."""
    return libpq_arguments(url, keepalives=LONG_KEEPALIVES)


def run_migrations_on(connection: Connection, lock_key: int) -> None:
    # Read first: a malformed setting fails before anything is locked.
    policy = LockRetryPolicy.from_env()
    wait_s = migrator_wait_s()
    # Several processes starting at once would each migrate: the first to take the lock does,
    # and the others wait for it, then find nothing left to do. That wait is not under the
    # migrations' lock_timeout, which is set only in their transactions, but a bound of its
    # own, and it is spent with no transaction open: a waiting snapshot would deadlock the
    # first migrator's concurrent index builds. The lock is the session's and the wait leaves
    # no transaction behind, so Alembic runs each migration in a transaction of its own, as
    # `transaction_per_migration` asks (and a migration may step outside it to build an index
    # concurrently).
    wait_for_migration_lock(connection, lock_key, wait_s)
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        run_with_lock_retries(connection, policy)
    finally:
        # A migration that failed may leave its transaction open, which would refuse the unlock.
        connection.rollback()
        connection.exec_driver_sql(f"SELECT pg_advisory_unlock({lock_key})")
        connection.commit()
