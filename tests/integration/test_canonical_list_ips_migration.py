"""Core migration 0043 rewrites IP list items stored as IPv4-mapped IPv6 addresses to their
IPv4 address, which is how payments' IPs are compared with them since."""

from collections.abc import Iterator

import psycopg
import pytest

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.postgres import scratch_database


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "canonical_list_ips") as url:
        yield url


ITEMS = [
    # (id, list, value as stored before)
    ("vli_mapped", "vl_ips", "::ffff:cb00:7105"),
    ("vli_mapped_313", "vl_ips", "::ffff:198.51.100.7"),
    ("vli_v6", "vl_ips", "2001:db8::1"),
    ("vli_not_mapped", "vl_ips", "::ffff:1"),
    ("vli_duplicate", "vl_dup", "::ffff:c000:201"),
    ("vli_plain", "vl_dup", "192.0.2.1"),
    ("vli_string", "vl_strings", "::ffff:cb00:7105"),
]


def test_mapped_items_hold_their_ipv4_address_and_a_duplicate_goes(scratch_core: str) -> None:
    upgrade("core", scratch_core, "0042_webhook_slot_jobs")
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
            "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
            "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
        )
        for list_id, item_type in (
            ("vl_ips", "ip_address"),
            ("vl_dup", "ip_address"),
            ("vl_strings", "string"),
        ):
            connection.execute(
                "INSERT INTO radar_value_lists (id, account_id, alias, name, item_type, "
                "metadata, created_by, created_at) "
                "VALUES (%s, 'acct_1', %s, %s, %s, '{}', 'remit', now())",
                (list_id, list_id, list_id, item_type),
            )
        for item_id, list_id, value in ITEMS:
            connection.execute(
                "INSERT INTO radar_value_list_items (id, account_id, value_list_id, value, "
                "value_key, created_by, created_at) "
                "VALUES (%s, 'acct_1', %s, %s, %s, 'remit', now())",
                (item_id, list_id, value, value),
            )
    upgrade("core", scratch_core, "0043_canonical_list_ips")
    with psycopg.connect(scratch_core) as connection:
        found = connection.execute(
            "SELECT id, value, value_key FROM radar_value_list_items ORDER BY id"
        ).fetchall()
    assert found == [
        ("vli_mapped", "203.0.113.5", "203.0.113.5"),
        ("vli_mapped_313", "198.51.100.7", "198.51.100.7"),
        ("vli_not_mapped", "::ffff:1", "::ffff:1"),
        ("vli_plain", "192.0.2.1", "192.0.2.1"),
        ("vli_string", "::ffff:cb00:7105", "::ffff:cb00:7105"),
        ("vli_v6", "2001:db8::1", "2001:db8::1"),
    ]
