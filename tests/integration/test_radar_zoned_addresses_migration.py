"""Core migration 0069 disables, with a recorded reason, the Radar rules an IPv6 zone literal
keeps from parsing, and removes the IP list items with a zone, recording each removal in the
account's Radar history; a line per account says what it did. Its downgrade puts the items
back as they were and drops the reason."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.radar.listed import rules_as_listed
from remit.radar.repository import RuleRepository
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0068_webhook_pending_due"
_AFTER = "0069_radar_zoned_addresses"
_ADDED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)

_ZONED_RULE = ":card_country: = 'US' or :ip_address: != 'fe80::1%eth0'"
# Rows as the version before saved them: two accounts with Radar data to deal with, one
# without. `rule_email` has a zone literal but parses: no address is compared with it.
_ROWS = [
    "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, fee_percent_bps, "
    "fee_fixed_minor, available_delay_days, automatic_payouts, radar_enabled) VALUES "
    "('acct_1', now(), 'usd', false, 290, 30, 2, false, true), "
    "('acct_2', now(), 'usd', false, 290, 30, 2, false, true), "
    "('acct_3', now(), 'usd', false, 290, 30, 2, false, true)",
    "INSERT INTO radar_value_lists (id, account_id, alias, name, item_type, metadata, "
    "created_by, created_at) VALUES "
    "('rsl_ips', 'acct_1', 'blocked_ips', 'Blocked IPs', 'ip_address', '{}', 'key_1', now()), "
    "('rsl_notes', 'acct_1', 'notes', 'Notes', 'string', '{}', 'key_1', now()), "
    "('rsl_ips2', 'acct_2', 'ips', 'IPs', 'ip_address', '{}', 'remit', now())",
    "INSERT INTO radar_value_list_items (id, account_id, value_list_id, value, value_key, "
    "created_by, created_at) VALUES "
    # (%% is a literal % beside the parameter.)
    "('rsli_zoned', 'acct_1', 'rsl_ips', 'fe80::1%%ETH0', 'fe80::1%%eth0', 'key_1', %(added)s), "
    "('rsli_plain', 'acct_1', 'rsl_ips', '203.0.113.5', '203.0.113.5', 'key_1', %(added)s), "
    "('rsli_note', 'acct_1', 'rsl_notes', 'fe80::1%%eth0', 'fe80::1%%eth0', 'key_1', %(added)s), "
    "('rsli_zoned2', 'acct_2', 'rsl_ips2', 'fe80::2%%2', 'fe80::2%%2', 'remit', %(added)s)",
    "INSERT INTO radar_rules (id, account_id, action, predicate, position, created_at) VALUES "
    "('rule_zoned', 'acct_1', 'block', "
    "':card_country: = ''US'' or :ip_address: != ''fe80::1%eth0''', 0, now()), "
    "('rule_list', 'acct_1', 'block', ':ip_address: in @blocked_ips', 1, now()), "
    "('rule_email', 'acct_1', 'review', ':email: = ''fe80::1%eth0''', 2, now()), "
    "('rule_other', 'acct_3', 'block', ':risk_score: > 90', 0, now())",
]


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "radar_zoned_addresses") as url:
        yield url


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return list(connection.execute(sql).fetchall())


def _items(url: str) -> list[tuple[object, ...]]:
    return _query(
        url,
        "SELECT id, account_id, value_list_id, value, value_key, created_by, created_at "
        "FROM radar_value_list_items ORDER BY id",
    )


async def _listed_reasons(url: str) -> dict[str, str | None]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as db:
            rules = await RuleRepository(db).in_order("acct_1")
            return {
                rule.id: rule.invalid_reason for rule in await rules_as_listed(db, "acct_1", rules)
            }
    finally:
        await dispose(engine)


async def test_zoned_rules_are_disabled_and_zoned_items_removed_on_record_and_put_back(
    scratch_core: str, caplog: pytest.LogCaptureFixture
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        for statement in _ROWS:
            connection.execute(statement, {"added": _ADDED} if "%(added)s" in statement else None)
    items_before = _items(scratch_core)

    with caplog.at_level(logging.WARNING, logger="remit.storage.migrations"):
        upgrade("core", scratch_core, _AFTER)

    reasons = {
        str(rule_id): reason
        for rule_id, reason in _query(scratch_core, "SELECT id, disabled_reason FROM radar_rules")
    }
    assert {rule for rule, reason in reasons.items() if reason is not None} == {"rule_zoned"}
    reason = str(reasons["rule_zoned"])
    assert reason.startswith("Disabled by remit's upgrade (core migration 0069)")
    assert "'fe80::1%eth0'" in reason
    assert (await _listed_reasons(scratch_core))["rule_zoned"] == reason
    assert _query(scratch_core, "SELECT predicate FROM radar_rules WHERE id = 'rule_zoned'") == [
        (_ZONED_RULE,)
    ]

    assert [item[0] for item in _items(scratch_core)] == ["rsli_note", "rsli_plain"]
    history = _query(
        scratch_core,
        "SELECT id, account_id, object_type, object_id, value_list_id, action, changed_by, "
        "before ->> 'value', before ->> 'created_by' FROM radar_changes ORDER BY id",
    )
    assert history == [
        ("rchg_zone_rsli_zoned", "acct_1", "radar.value_list_item", "rsli_zoned", "rsl_ips",
         "deleted", "remit", "fe80::1%ETH0", "key_1"),
        ("rchg_zone_rsli_zoned2", "acct_2", "radar.value_list_item", "rsli_zoned2", "rsl_ips2",
         "deleted", "remit", "fe80::2%2", "remit"),
    ]  # fmt: skip

    lines = [r.getMessage() for r in caplog.records if r.name == "remit.storage.migrations"]
    assert len(lines) == 2
    assert lines[0].startswith("account acct_1: disabled 1 Radar rules")
    assert "rule_zoned" in lines[0]
    assert "rsli_zoned ('fe80::1%ETH0' of @blocked_ips)" in lines[0]
    assert lines[1].startswith("account acct_2: disabled 0 Radar rules")

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _items(scratch_core) == items_before
    assert _query(scratch_core, "SELECT count(*) FROM radar_changes") == [(0,)]
    columns = _query(
        scratch_core,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'radar_rules'",
    )
    assert ("disabled_reason",) not in columns
    assert _query(scratch_core, "SELECT count(*) FROM radar_rules") == [(4,)]
