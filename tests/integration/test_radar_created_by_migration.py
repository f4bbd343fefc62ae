"""Core migration 0061 gives the value lists and items whose creation Radar's history recorded
(since 0057) the key that created them, in place of "remit"."""

from collections.abc import Iterator

import psycopg
import pytest

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
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
