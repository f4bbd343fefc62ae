"""Core migration 0061 gives the value lists and items whose creation Radar's history recorded
(since 0057) the key that created them, in place of "remit", in batches that leave the items
free to change meanwhile."""

import time
from collections.abc import Iterator

import psycopg
import pytest

import remit.storage.batched_backfill
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.migrating import upgrading_in_a_thread
from tests.support.postgres import scratch_database


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "radar_created_by") as url:
        yield url


# (id, created_by before, who the history's `created` record names, if any)
LISTS = [
    ("vl_by_key", "remit", "key_ann"),
    ("vl_before_history", "remit", None),
    ("vl_by_remit", "remit", "remit"),
]
ITEMS = [
    ("vli_by_key", "vl_by_key", "key_bob"),
    ("vli_before_history", "vl_by_key", None),
]


def test_lists_and_items_take_the_key_their_created_record_names(scratch_core: str) -> None:
    upgrade("core", scratch_core, "0060_admin_idempotency_keys")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        for account in ("acct_1", "acct_2"):
            connection.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES (%s, now(), 'usd', false, 290, 30, 2, false, true)",
                (account,),
            )

        def created(object_type: str, object_id: str, by: str | None, account: str) -> None:
            if by is not None:
                connection.execute(
                    "INSERT INTO radar_changes (id, account_id, object_type, object_id, "
                    "action, changed_by, created_at) "
                    "VALUES (%s, %s, %s, %s, 'created', %s, now())",
                    (f"rchg_{object_id}", account, object_type, object_id, by),
                )

        for list_id, _, by in LISTS:
            connection.execute(
                "INSERT INTO radar_value_lists (id, account_id, alias, name, item_type, "
                "metadata, created_by, created_at) "
                "VALUES (%s, 'acct_1', %s, %s, 'email', '{}', 'remit', now())",
                (list_id, list_id, list_id),
            )
            created("radar.value_list", list_id, by, "acct_1")
        for item_id, list_id, by in ITEMS:
            connection.execute(
                "INSERT INTO radar_value_list_items (id, account_id, value_list_id, value, "
                "value_key, created_by, created_at) "
                "VALUES (%s, 'acct_1', %s, %s, %s, 'remit', now())",
                (item_id, list_id, item_id, item_id),
            )
            created("radar.value_list_item", item_id, by, "acct_1")
        # Another account's record of an object with the same id names no one here.
        connection.execute(
            "INSERT INTO radar_changes (id, account_id, object_type, object_id, action, "
            "changed_by, created_at) VALUES ('rchg_other', 'acct_2', 'radar.value_list', "
            "'vl_before_history', 'created', 'key_eve', now())"
        )
    upgrade("core", scratch_core, "0061_radar_created_by_keys")
    with psycopg.connect(scratch_core) as connection:
        lists: dict[str, str] = dict(
            connection.execute("SELECT id, created_by FROM radar_value_lists").fetchall()
        )
        items: dict[str, str] = dict(
            connection.execute("SELECT id, created_by FROM radar_value_list_items").fetchall()
        )
    assert lists == {"vl_by_key": "key_ann", "vl_before_history": "remit", "vl_by_remit": "remit"}
    assert items == {"vli_by_key": "key_bob", "vli_before_history": "remit"}


# The advisory lock a test holds to keep one batch of the backfill waiting.
_BATCH_HOLD = 7340061
_ITEMS = 50
_BATCH_ROWS = 20


def _blocklist(url: str) -> list[str]:
    """A value list of `_ITEMS` items, each created by key_ann as the history records; returns
    the items' ids in id order."""
    items = [f"vli_{n:03d}" for n in range(_ITEMS)]
    with psycopg.connect(url) as connection:
        connection.execute(
            "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
            "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
            "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
        )
        connection.execute(
            "INSERT INTO radar_value_lists (id, account_id, alias, name, item_type, "
            "metadata, created_by, created_at) "
            "VALUES ('vl_block', 'acct_1', 'block', 'block', 'email', '{}', 'remit', now())"
        )
        for item_id in items:
            connection.execute(
                "INSERT INTO radar_value_list_items (id, account_id, value_list_id, value, "
                "value_key, created_by, created_at) "
                "VALUES (%s, 'acct_1', 'vl_block', %s, %s, 'remit', now())",
                (item_id, item_id, item_id),
            )
            connection.execute(
                "INSERT INTO radar_changes (id, account_id, object_type, object_id, action, "
                "changed_by, created_at) VALUES (%s, 'acct_1', 'radar.value_list_item', %s, "
                "'created', 'key_ann', now())",
                (f"rchg_{item_id}", item_id),
            )
    return items


def _items_by_key(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id FROM radar_value_list_items WHERE created_by = 'key_ann' ORDER BY id"
        ).fetchall()
    return [str(row[0]) for row in rows]


def _wait_for_a_held_batch(url: str) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE '%%UPDATE%%' "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("the backfill never reached the held item")


def test_items_can_be_deleted_while_their_creators_are_copied(
    scratch_core: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remit.storage.batched_backfill, "BATCH_ROWS", _BATCH_ROWS)
    url = scratch_core
    upgrade("core", url, "0060_admin_idempotency_keys")
    items = _blocklist(url)
    # The copy waits at an item of its second batch for as long as the test holds the lock.
    with psycopg.connect(url) as connection:
        connection.execute(
            "CREATE FUNCTION hold_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_advisory_xact_lock({_BATCH_HOLD}); RETURN NEW; END $$"
        )
        connection.execute(
            "CREATE TRIGGER hold_batch BEFORE UPDATE ON radar_value_list_items FOR EACH ROW "
            "WHEN (NEW.id = 'vli_030') EXECUTE FUNCTION hold_batch()"
        )
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_BATCH_HOLD,))
        with upgrading_in_a_thread("core", url, "0061_radar_created_by_keys") as failure:
            try:
                _wait_for_a_held_batch(url)
                # The first batch is committed, the second not yet.
                assert _items_by_key(url) == items[:_BATCH_ROWS]
                # A merchant deletes an item meanwhile, and waits for no row lock of the copy.
                with psycopg.connect(url) as merchant:
                    merchant.execute("SET lock_timeout = '200ms'")
                    merchant.execute(
                        "DELETE FROM radar_value_list_items WHERE id IN ('vli_005', 'vli_045')"
                    )
            finally:
                holder.execute("SELECT pg_advisory_unlock(%s)", (_BATCH_HOLD,))
    assert failure == []
    kept = [item for item in items if item not in ("vli_005", "vli_045")]
    assert _items_by_key(url) == kept
