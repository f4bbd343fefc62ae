"""A migration waits only briefly for a lock that a long transaction holds on its table: it is
run again a few times, then fails saying what was in the way, and its lock_timeout never
outlives its own transactions."""

import logging
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy import create_engine, pool

from remit.storage.embedded import EmbeddedCluster, to_sqlalchemy_url
from remit.storage.migrate import alembic_config, upgrade
from remit.storage.migration_locks import MigrationLockTimeoutError
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database

_BEFORE = "0012_event_api_version"
# Adds a column to payment_intents, then columns to charges.
_ALTERING = "0013_charge_details"
# The core tree's env.py serialises migrators on this advisory lock.
_CORE_MIGRATION_LOCK = 1895254928


@pytest.fixture
def empty_database(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "lock_timeout") as url:
        yield url


@pytest.fixture
def database_before_the_columns(empty_database: str) -> str:
    upgrade("core", empty_database, _BEFORE)
    return empty_database


@pytest.fixture
def short_lock_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_TIMEOUT_S", "0.1")
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_ATTEMPTS", "3")


class _Retries(logging.Handler):
    """Sets `seen` when a migration is about to be run again."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.set()


@pytest.fixture
def retries() -> Iterator[_Retries]:
    handler = _Retries()
    logger = logging.getLogger("remit.storage.migration_locks")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _version(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def _has_column(url: str, table: str, column: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
            (table, column),
        ).fetchone()
    return row is not None


@pytest.mark.usefixtures("short_lock_waits")
def test_a_migration_blocked_by_a_long_transaction_gives_up_and_says_what_blocked_it(
    database_before_the_columns: str, retries: _Retries
) -> None:
    url = database_before_the_columns
    with psycopg.connect(url) as long_reader:
        # A transaction that has read charges holds a lock on the table until it ends; the
        # migration's ALTER TABLE needs one that conflicts with every other.
        long_reader.execute("SELECT count(*) FROM charges")

        with pytest.raises(MigrationLockTimeoutError) as failure:
            upgrade("core", url, _ALTERING)

        message = str(failure.value)
        assert f"migration {_ALTERING} could not lock a table it changes" in message
        assert "another transaction held a lock on that table through 3 attempts" in message
        assert "ALTER TABLE charges" in message
        assert "pg_stat_activity" in message
        assert "pg_locks" in message
        assert retries.seen.is_set()
        # The table serves the long transaction and every other session as before: the
        # migration left nothing waiting in its lock queue.
        long_reader.execute("SELECT count(*) FROM charges")
        with psycopg.connect(url) as writer:
            writer.execute("LOCK TABLE charges IN ROW EXCLUSIVE MODE NOWAIT")
            writer.execute("SELECT count(*) FROM charges")
    # The whole migration was rolled back, its change to payment_intents (made before it
    # reached charges) too.
    assert _version(url) == _BEFORE
    assert not _has_column(url, "payment_intents", "shipping")


def _upgrade_ending_after_the_first_timeout(
    url: str, revision: str, blocker: "psycopg.Connection[Any]", retries: "_Retries"
) -> None:
    """Upgrade to `revision` while `blocker`'s transaction is in the way, ending that
    transaction from another thread once the first attempt has timed out."""

    def end_after_the_first_timeout() -> None:
        retries.seen.wait(timeout=30)
        blocker.rollback()

    ender = threading.Thread(target=end_after_the_first_timeout)
    ender.start()
    try:
        upgrade("core", url, revision)
    finally:
        retries.seen.set()
        ender.join()


@pytest.mark.usefixtures("short_lock_waits")
def test_a_migration_succeeds_once_the_long_transaction_ends_between_its_attempts(
    database_before_the_columns: str, retries: _Retries, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Attempts enough that a slow thread switch on a busy machine still ends the long
    # transaction before the last of them (the pauses add up to seconds).
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_ATTEMPTS", "12")
    url = database_before_the_columns
    with psycopg.connect(url) as long_reader:
        long_reader.execute("SELECT count(*) FROM charges")
        _upgrade_ending_after_the_first_timeout(url, _ALTERING, long_reader, retries)
    assert _version(url) == _ALTERING
    assert _has_column(url, "charges", "receipt_email")
    assert _has_column(url, "payment_intents", "shipping")


def _waiting_for_the_other_migrator(url: str) -> bool:
    """Whether a migrator has asked for the lock and is waiting to ask again, with no
    transaction open (`idle`, not `idle in transaction`): it holds no snapshot meanwhile."""
    with psycopg.connect(url, autocommit=True) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE query = %s AND state = 'idle' AND backend_xmin IS NULL",
            (f"SELECT pg_try_advisory_lock({_CORE_MIGRATION_LOCK})",),
        ).fetchone()
    return row is not None and row[0] > 0


def _until_waiting_for_the_other_migrator(url: str) -> None:
    """Seen between two of its asks (one in progress shows as `active`, however briefly)."""
    deadline = time.monotonic() + 30
    while not _waiting_for_the_other_migrator(url):
        assert time.monotonic() < deadline, "no migrator is waiting for the other"
        time.sleep(0.02)


@pytest.mark.usefixtures("short_lock_waits")
def test_a_migrator_waits_for_another_without_the_lock_timeout(
    database_before_the_columns: str, retries: _Retries
) -> None:
    url = database_before_the_columns
    with psycopg.connect(url, autocommit=True) as other_migrator:
        other_migrator.execute("SELECT pg_advisory_lock(%s)", (_CORE_MIGRATION_LOCK,))
        with upgrading_in_a_thread("core", url, _ALTERING) as failure:
            try:
                _until_waiting_for_the_other_migrator(url)
                # Several lock timeouts' worth: the wait is the migrators' own, never cut short.
                time.sleep(0.5)
                _until_waiting_for_the_other_migrator(url)
                assert failure == []
            finally:
                other_migrator.execute("SELECT pg_advisory_unlock(%s)", (_CORE_MIGRATION_LOCK,))
    assert failure == []
    assert not retries.seen.is_set()
    assert _version(url) == _ALTERING


_ENV = """
from alembic import context

from remit.storage.migration_env import run_migrations_on

run_migrations_on(context.config.attributes["connection"], 4242)
"""

# Records the lock_timeout its statements run under, in its transaction and outside one.
_MIGRATION = """
from alembic import op

revision = "0001_settings_seen"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE settings_seen (place text PRIMARY KEY, lock_timeout text)")
    op.execute(
        "INSERT INTO settings_seen VALUES ('transaction', current_setting('lock_timeout'))"
    )
    with op.get_context().autocommit_block():
        op.execute(
            "INSERT INTO settings_seen VALUES ('autocommit', current_setting('lock_timeout'))"
        )
"""


def _scripts(directory: Path, migration: str = _MIGRATION) -> Config:
    (directory / "versions").mkdir(parents=True)
    (directory / "env.py").write_text(textwrap.dedent(_ENV))
    (directory / "versions" / "0001_migration.py").write_text(textwrap.dedent(migration))
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(directory))
    return config


def test_the_lock_timeout_holds_in_the_migrations_transactions_only(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_TIMEOUT_S", "0.25")
    with psycopg.connect(empty_database) as fresh:
        server_default = fresh.execute("SHOW lock_timeout").fetchone()
    assert server_default is not None
    config = _scripts(tmp_path / "scripts")
    engine = create_engine(to_sqlalchemy_url(empty_database), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            afterwards = connection.exec_driver_sql("SHOW lock_timeout").scalar_one()
            connection.rollback()
    finally:
        engine.dispose()

    with psycopg.connect(empty_database) as reader:
        rows = reader.execute("SELECT place, lock_timeout FROM settings_seen").fetchall()
    seen = {str(place): str(lock_timeout) for place, lock_timeout in rows}
    assert seen == {"transaction": "250ms", "autocommit": server_default[0]}
    assert afterwards == server_default[0]


def test_an_index_build_cut_short_by_a_lock_timeout_is_built_again_on_the_next_attempt(
    empty_database: str, retries: _Retries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_TIMEOUT_S", "0.1")
    url = empty_database
    upgrade("core", url, "0013_charge_details")
    # The migrations never limit a concurrent build's waits, but an operator's own lock_timeout
    # does: a build it cuts short leaves an invalid index behind.
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET lock_timeout = 100").format(
                sql.Identifier(admin.info.dbname)
            )
        )
    with psycopg.connect(url) as open_writer:
        open_writer.execute("LOCK TABLE payment_methods IN ROW EXCLUSIVE MODE")
        _upgrade_ending_after_the_first_timeout(
            url, "0014_vault_token_indexes", open_writer, retries
        )
    with psycopg.connect(url) as reader:
        valid = reader.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname IN ('ix_payment_methods_vault_token', 'ix_tokens_vault_token')"
        ).fetchall()
    assert dict(valid) == {"ix_payment_methods_vault_token": True, "ix_tokens_vault_token": True}


@pytest.mark.usefixtures("short_lock_waits")
def test_a_destination_counted_from_the_current_revision_is_refused(
    database_before_the_columns: str,
) -> None:
    url = database_before_the_columns
    with pytest.raises(ValueError, match="absolute revision"):
        command.downgrade(alembic_config("core", url), "-1")
    assert _version(url) == _BEFORE


# Rolled back as PostgreSQL rolls back a deadlock's victim (SQLSTATE 40P01) in its first
# `deadlocks` attempts; a sequence counts them, as nextval outlives a rollback.
_DEADLOCKING = """
from alembic import op

revision = "0001_deadlocking"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE IF NOT EXISTS attempts")
    with op.get_context().autocommit_block():
        op.execute("SELECT nextval('attempts')")
    op.execute("CREATE TABLE made (id int)")
    op.execute(
        "DO $$ BEGIN IF currval('attempts') <= {deadlocks} THEN RAISE EXCEPTION USING "
        "ERRCODE = 'deadlock_detected', MESSAGE = 'deadlock detected', "
        "DETAIL = 'Process 1 waits for ShareRowExclusiveLock on relation 2'; END IF; END $$"
    )
"""


def _upgrade_with(url: str, config: Config) -> None:
    engine = create_engine(to_sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def test_a_migration_rolled_back_to_break_a_deadlock_is_run_again(
    empty_database: str, tmp_path: Path, retries: _Retries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_TIMEOUT_S", "0.01")
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_ATTEMPTS", "3")
    config = _scripts(tmp_path / "scripts", _DEADLOCKING.replace("{deadlocks}", "2"))
    _upgrade_with(empty_database, config)
    assert retries.seen.is_set()
    with psycopg.connect(empty_database) as reader:
        attempts = reader.execute("SELECT last_value FROM attempts").fetchone()
        made = reader.execute("SELECT to_regclass('made') IS NOT NULL").fetchone()
    assert attempts == (3,)
    assert made == (True,)


def test_a_migration_rolled_back_by_a_deadlock_in_every_attempt_fails_saying_so(
    empty_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_TIMEOUT_S", "0.01")
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_ATTEMPTS", "2")
    config = _scripts(tmp_path / "scripts", _DEADLOCKING.replace("{deadlocks}", "99"))
    with pytest.raises(MigrationLockTimeoutError) as failure:
        _upgrade_with(empty_database, config)
    message = str(failure.value)
    assert "migration 0001_deadlocking was rolled back to break a deadlock" in message
    assert "in each of its 2 attempts" in message
    assert "waits for ShareRowExclusiveLock on relation 2" in message
