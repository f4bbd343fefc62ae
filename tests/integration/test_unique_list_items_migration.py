"""Core migration 0056 makes a value list hold each value once: it removes the duplicates stored
before (keeping the oldest item of each value), then builds a unique index without blocking
writes, and builds it again when a process of the previous version adds a duplicate while it
is being built."""

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database

BEFORE = "0055_reconciliation_outcomes"
AFTER = "0056_unique_list_items"
INDEX = "ux_radar_value_list_items_value"
T0 = datetime(2026, 3, 1, tzinfo=UTC)

LISTS = [("vl_emails", "email"), ("vl_exact", "case_sensitive_string"), ("vl_other", "email")]
ITEMS = [
    # (id, list, value, value_key as the service stored it, seconds after T0)
    ("vli_b_newer", "vl_emails", "Ann@Example.com", "ann@example.com", 5),
    ("vli_z_oldest", "vl_emails", "ann@example.com", "ann@example.com", 1),
    ("vli_c_newest", "vl_emails", "ANN@example.com", "ann@example.com", 9),
    ("vli_bob", "vl_emails", "bob@example.com", "bob@example.com", 2),
    # Same time: the lower id is the one kept.
    ("vli_exact_b", "vl_exact", "Abc", "Abc", 3),
    ("vli_exact_a", "vl_exact", "Abc", "Abc", 3),
    # Another spelling in a case-sensitive list is another value.
    ("vli_exact_lower", "vl_exact", "abc", "abc", 4),
    # The same value in another list is no duplicate.
    ("vli_other_ann", "vl_other", "ann@example.com", "ann@example.com", 6),
]


@pytest.fixture
def before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "unique_list_items") as url:
        upgrade("core", url, BEFORE)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
            )
            for list_id, item_type in LISTS:
                connection.execute(
                    "INSERT INTO radar_value_lists (id, account_id, alias, name, item_type, "
                    "metadata, created_by, created_at) "
                    "VALUES (%s, 'acct_1', %s, %s, %s, '{}', 'remit', now())",
                    (list_id, list_id, list_id, item_type),
                )
            for item_id, list_id, value, key, seconds in ITEMS:
                _insert_item(connection, item_id, list_id, value, key, seconds)
        yield url


def _insert_item(
    connection: "psycopg.Connection[Any]",
    item_id: str,
    list_id: str,
    value: str,
    key: str,
    seconds: int = 0,
) -> None:
    connection.execute(
        "INSERT INTO radar_value_list_items (id, account_id, value_list_id, value, value_key, "
        "created_by, created_at) VALUES (%s, 'acct_1', %s, %s, %s, 'remit', %s)",
        (item_id, list_id, value, key, T0 + timedelta(seconds=seconds)),
    )


def _items(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as connection:
        return [
            (row[0], row[1], row[2])
            for row in connection.execute(
                "SELECT id, value_list_id, value FROM radar_value_list_items ORDER BY id"
            )
        ]


def _index_is_valid(url: str) -> bool | None:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT i.indisvalid AND i.indisunique FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            (INDEX,),
        ).fetchone()
    return None if row is None else bool(row[0])


def test_the_oldest_item_of_each_value_is_kept_and_a_second_is_refused(before: str) -> None:
    upgrade("core", before, AFTER)
    assert _items(before) == [
        ("vli_bob", "vl_emails", "bob@example.com"),
        ("vli_exact_a", "vl_exact", "Abc"),
        ("vli_exact_lower", "vl_exact", "abc"),
        ("vli_other_ann", "vl_other", "ann@example.com"),
        ("vli_z_oldest", "vl_emails", "ann@example.com"),
    ]
    assert _index_is_valid(before) is True
    with psycopg.connect(before) as connection, pytest.raises(psycopg.errors.UniqueViolation):
        _insert_item(connection, "vli_again", "vl_emails", "Ann@example.com", "ann@example.com")


def _wait_for_the_build_to_wait(url: str) -> None:
    deadline = time.monotonic() + 30  # only a build that never starts waits this long
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'CREATE UNIQUE INDEX%%' "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            watcher.execute("SELECT pg_sleep(0.02)")
    raise AssertionError("the index build never started waiting for the open transaction")


def test_items_stay_writable_while_the_index_builds_and_a_duplicate_added_meanwhile_goes(
    before: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A process of the previous version, still running, adds a value the list holds while
    the index is being built: the build fails on it, and is made again once it is removed.
    Nothing queues behind the build meanwhile."""
    caplog.set_level(logging.WARNING, logger="remit.storage.migrations")
    with psycopg.connect(before) as old_process:
        # Its transaction is open when the upgrade starts: the build waits for it to end.
        _insert_item(
            old_process, "vli_added_during", "vl_emails", "bob@example.com", "bob@example.com", 60
        )
        with upgrading_in_a_thread("core", before, AFTER) as failure:
            try:
                _wait_for_the_build_to_wait(before)
                with psycopg.connect(before) as later_writer:
                    later_writer.execute(
                        "LOCK TABLE radar_value_list_items IN ROW EXCLUSIVE MODE NOWAIT"
                    )
            finally:
                old_process.commit()
    assert failure == []
    assert _index_is_valid(before) is True
    # Removed after the first build met it, not before: it was not committed then.
    assert (
        "removed value list item vli_added_during of vl_emails (account acct_1), a duplicate "
        "of vli_bob" in caplog.text
    )
    kept = [item for item in _items(before) if item[1] == "vl_emails"]
    assert kept == [
        ("vli_bob", "vl_emails", "bob@example.com"),
        ("vli_z_oldest", "vl_emails", "ann@example.com"),
    ]
