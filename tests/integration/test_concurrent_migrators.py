"""Several migrators of one database started at once: the first migrates, the others wait for
it without holding a snapshot, so that its concurrent index builds, which wait for every older
snapshot, never wait on them; and a migrator that waits too long says who is migrating."""

import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from remit.storage.migration_locks import MigratorWaitTimeoutError
from tests.support.postgres import scratch_database

# Its upgrade builds ix_jobs_finished concurrently.
_BEFORE_THE_INDEX = "0065_balance_release_failures"
_THE_INDEX = "0066_jobs_finished"
# The core tree's env.py serialises migrators on this advisory lock.
_CORE_MIGRATION_LOCK = 1895254928


@pytest.fixture
def database_before_the_index(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "concurrent_migrators") as url:
        upgrade("core", url, _BEFORE_THE_INDEX)
        with psycopg.connect(url, autocommit=True) as admin:
            # A deadlock is found in a tenth of a second instead of a whole one.
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET deadlock_timeout = 100").format(
                    sql.Identifier(admin.info.dbname)
                )
            )
        yield url


def _migrators_at_the_lock(url: str, holder_pid: int) -> int:
    """How many sessions besides `holder_pid` have asked for the migration lock."""
    with psycopg.connect(url, autocommit=True) as watcher:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid NOT IN (pg_backend_pid(), %s) AND query LIKE %s",
            (holder_pid, f"%advisory_lock({_CORE_MIGRATION_LOCK})%"),
        ).fetchone()
    return 0 if row is None else int(row[0])


def _index_is_valid(url: str) -> bool | None:
    with psycopg.connect(url) as reader:
        row = reader.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'ix_jobs_finished'"
        ).fetchone()
    return None if row is None else bool(row[0])


def _version(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def _migrator(url: str, destination: str) -> "subprocess.Popen[str]":
    """A process of its own that upgrades `url`: Alembic keeps its context in module globals,
    so two upgrades in one process's threads would share them."""
    return subprocess.Popen(
        [sys.executable, "-c", _UPGRADE, url, destination],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


_UPGRADE = "import sys; from remit.storage.migrate import upgrade; upgrade('core', *sys.argv[1:])"


def test_two_migrators_started_together_both_succeed_past_a_concurrent_index_build(
    database_before_the_index: str,
) -> None:
    url = database_before_the_index
    # Both start while the lock is taken, so that whichever gets it next builds the index
    # while the other is still waiting for it.
    with psycopg.connect(url, autocommit=True) as starter:
        starter.execute("SELECT pg_advisory_lock(%s)", (_CORE_MIGRATION_LOCK,))
        migrators = [_migrator(url, _THE_INDEX) for _ in range(2)]
        try:
            deadline = time.monotonic() + 30
            while _migrators_at_the_lock(url, starter.info.backend_pid) < 2:
                assert time.monotonic() < deadline, "the migrators never reached the lock"
                time.sleep(0.02)
        finally:
            starter.execute("SELECT pg_advisory_unlock(%s)", (_CORE_MIGRATION_LOCK,))
    outputs = [migrator.communicate(timeout=60)[0] for migrator in migrators]
    assert [migrator.returncode for migrator in migrators] == [0, 0], outputs
    assert _version(url) == _THE_INDEX
    assert _index_is_valid(url) is True


def test_a_migrator_that_waits_too_long_names_the_one_migrating(
    database_before_the_index: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_MIGRATOR_WAIT_S", "0.3")
    url = database_before_the_index
    with psycopg.connect(
        url, autocommit=True, application_name="migrator-elsewhere"
    ) as other_migrator:
        other_migrator.execute("SELECT pg_advisory_lock(%s)", (_CORE_MIGRATION_LOCK,))
        started = time.monotonic()
        with pytest.raises(MigratorWaitTimeoutError) as failure:
            upgrade("core", url, _THE_INDEX)
        waited = time.monotonic() - started
        message = str(failure.value)
        assert f"pid {other_migrator.info.backend_pid}" in message
        assert "application_name 'migrator-elsewhere'" in message
        assert "REMIT_MIGRATOR_WAIT_S" in message
        assert "pg_terminate_backend" in message
    # Its own wait, not the default hour's: only an order of magnitude is asked of it, the rest
    # being a loaded machine's time to start the upgrade.
    assert 0.3 <= waited < 60
    # It gave up before migrating anything, and left the lock to the next.
    assert _version(url) == _BEFORE_THE_INDEX
    upgrade("core", url, _THE_INDEX)
    assert _index_is_valid(url) is True
