"""Migration 0014 builds its indexes without blocking writes to payment methods and tokens,
and finishes an earlier build that was interrupted."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database

_BEFORE = "0013_charge_details"
_AFTER = "0014_vault_token_indexes"
_INDEX = "ix_payment_methods_vault_token"


@pytest.fixture
def database_before_the_indexes(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "index_migration") as url:
        upgrade("core", url, _BEFORE)
        yield url


def _index_is_valid(url: str, name: str) -> bool | None:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            (name,),
        ).fetchone()
    return None if row is None else bool(row[0])


def _wait_for_the_build_to_wait(url: str) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'CREATE INDEX%%' "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("the index build never started waiting for the open transaction")


@contextmanager
def _migrating_behind(
    open_writer: "psycopg.Connection[Any]", url: str
) -> Iterator[list[BaseException]]:
    """Upgrade to the indexes in a thread while `open_writer`'s transaction holds a write lock
    on payment methods, once the build waits for it; the block runs then. Afterwards the open
    transaction ends and the upgrade finishes; the list holds what it raised, if anything."""
    open_writer.execute("LOCK TABLE payment_methods IN ROW EXCLUSIVE MODE")
    with upgrading_in_a_thread("core", url, _AFTER) as failure:
        try:
            _wait_for_the_build_to_wait(url)
            yield failure
        finally:
            open_writer.rollback()


def test_payment_methods_stay_writable_while_the_index_builds(
    database_before_the_indexes: str,
) -> None:
    url = database_before_the_indexes
    # A transaction writing payment methods is open when the upgrade starts, as on a live
    # platform. A plain CREATE INDEX queues for a lock behind it, and every later write queues
    # behind the CREATE INDEX.
    with (
        psycopg.connect(url) as open_writer,
        _migrating_behind(open_writer, url) as failure,
        psycopg.connect(url) as later_writer,
    ):
        # NOWAIT: the write must not have to queue behind the index build at all.
        later_writer.execute("LOCK TABLE payment_methods IN ROW EXCLUSIVE MODE NOWAIT")
        later_writer.execute("LOCK TABLE tokens IN ROW EXCLUSIVE MODE NOWAIT")
    assert failure == []
    assert _index_is_valid(url, _INDEX) is True
    assert _index_is_valid(url, "ix_tokens_vault_token") is True


def _waiting_build(url: str) -> tuple[int, object]:
    """The session and start of the index build waiting on a lock. A concurrent build waits
    for older transactions once per phase, so between two phases it is briefly seen waiting on
    nothing: the sample is taken again until it is seen waiting."""
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while True:
            row = watcher.execute(
                "SELECT pid, query_start FROM pg_stat_activity "
                "WHERE query ILIKE 'CREATE INDEX%%' AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None:
                return int(row[0]), row[1]
            assert time.monotonic() < deadline, "no index build is waiting"
            time.sleep(0.01)


def test_the_index_build_waits_for_open_transactions_beyond_the_migration_lock_timeout(
    database_before_the_indexes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL counts a concurrent build's wait for older transactions as a lock wait: under
    # the migrations' lock_timeout it would be cut short, leaving an invalid index, and start
    # over. It runs outside their transactions, so the timeout never applies to it.
    monkeypatch.setenv("REMIT_MIGRATION_LOCK_TIMEOUT_S", "0.05")
    url = database_before_the_indexes
    with psycopg.connect(url) as open_writer, _migrating_behind(open_writer, url) as failure:
        first = _waiting_build(url)
        time.sleep(0.5)
        # The same statement of the same session, still waiting: never cancelled.
        assert _waiting_build(url) == first
    assert failure == []
    assert _index_is_valid(url, _INDEX) is True


def test_an_index_left_invalid_by_an_interrupted_build_is_built_again(
    database_before_the_indexes: str,
) -> None:
    url = database_before_the_indexes
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE INDEX {_INDEX} ON payment_methods (vault_token)")
        # What a concurrent build cut short leaves behind: the index exists but is not valid.
        connection.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (_INDEX,)
        )
    assert _index_is_valid(url, _INDEX) is False

    upgrade("core", url, _AFTER)

    assert _index_is_valid(url, _INDEX) is True
