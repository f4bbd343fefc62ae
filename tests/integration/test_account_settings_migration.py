"""Core migration 0059 brings within bounds the account settings whose repair changes nothing
the merchant was charged or paid, logging each account it changes; it stops the upgrade,
changing nothing and naming the accounts, when an account's settings worked and no value within
bounds charges or pays as they did."""

import asyncio
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.commands import remit
from tests.support.postgres import scratch_database

_BEFORE = "0058_previous_attributes_by_key"
_AFTER = "0059_account_settings_in_bounds"

Settings = tuple[object, ...]

# id: (fee_percent_bps, fee_fixed_minor, available_delay_days, default_currency), as stored
# before and as the migration leaves them.
_REPAIRABLE = {
    # No part of the pricing above 0: every fee was 0 or refused.
    "acct_negative_fee": ((-1000, 0, 2, "usd"), (0, 0, 2, "usd")),
    "acct_nothing_positive": ((-5, -30, 2, "usd"), (0, 0, 2, "usd")),
    # 100% or more, nothing negative: every fee was the whole amount. A delay past the year
    # 9999 failed every capture.
    "acct_huge": ((20_000, 10**12, 10**7, "eur"), (10_000, 99_999_999, 365, "eur")),
    "acct_negative_delay": ((290, 30, -3, "usd"), (290, 30, 0, "usd")),
    "acct_capitals": ((290, 30, 2, "GBP"), (290, 30, 2, "gbp")),
    "acct_bogus_currency": ((290, 30, 2, ""), (290, 30, 2, "usd")),
    "acct_fine": ((150, 0, 7, "jpy"), (150, 0, 7, "jpy")),
}
# Settings that worked, which no value within bounds charges or pays as they did.
_UNDECIDED = {
    "acct_fixed_below_zero": (290, -30, 2, "usd"),
    "acct_percent_below_zero": (-10, 30, 2, "usd"),
    "acct_fixed_above_max": (290, 10**10, 2, "jpy"),
    "acct_long_delay": (290, 30, 366, "usd"),
    "acct_longest_delay": (290, 30, 2_000_000, "usd"),
}


def _insert(url: str, stored: Mapping[str, Settings]) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        for account_id, (bps, fixed, days, currency) in stored.items():
            db.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, "
                "automatic_payouts, radar_enabled) "
                "VALUES (%s, now(), %s, false, %s, %s, %s, false, true)",
                (account_id, currency, bps, fixed, days),
            )


@pytest.fixture
def database_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "account_settings") as url:
        upgrade("core", url, _BEFORE)
        _insert(url, {account: before for account, (before, _) in _REPAIRABLE.items()})
        yield url


def _settings(url: str) -> dict[str, Settings]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT id, fee_percent_bps, fee_fixed_minor, available_delay_days, "
            "default_currency FROM accounts"
        ).fetchall()
    return {str(row[0]): tuple(row[1:]) for row in rows}


def _revision(url: str) -> str:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


def test_settings_whose_repair_charges_as_before_are_brought_within_bounds_and_logged(
    database_before: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="remit.storage.migrations"):
        upgrade("core", database_before, _AFTER)
    assert _settings(database_before) == {
        account: after for account, (_, after) in _REPAIRABLE.items()
    }
    logged = [
        record.getMessage()
        for record in caplog.records
        if record.name == "remit.storage.migrations"
    ]
    assert len(logged) == len(_REPAIRABLE) - 1
    assert not any("acct_fine" in line for line in logged)
    assert any(
        "acct_negative_fee" in line and "fee_percent_bps -1000 -> 0" in line for line in logged
    )


def test_settings_that_worked_and_cannot_be_kept_stop_the_upgrade_naming_them(
    database_before: str,
) -> None:
    _insert(database_before, _UNDECIDED)
    stored = _settings(database_before)

    with pytest.raises(RuntimeError) as stopped:
        upgrade("core", database_before, _AFTER)

    message = str(stopped.value)
    for account_id in _UNDECIDED:
        assert account_id in message
    assert "fee_percent_bps 290 with fee_fixed_minor -30" in message
    assert "available_delay_days 2000000" in message
    assert "UpdateAccountSettings" in message
    # The accounts that could be repaired are not named: only those an operator must decide.
    assert "acct_huge" not in message
    assert _settings(database_before) == stored  # nothing changed, the repairable ones neither
    assert _revision(database_before) == _BEFORE

    # The operator sets settings within bounds (here the nearest ones, as the message spells
    # them out) and runs the upgrade again.
    statements = re.findall(r"UPDATE accounts SET [^;]*;", message)
    assert len(statements) == len(_UNDECIDED)
    with psycopg.connect(database_before, autocommit=True) as db:
        for statement in statements:
            db.execute(statement)
    upgrade("core", database_before, _AFTER)
    settings = _settings(database_before)
    assert settings["acct_fixed_below_zero"] == (290, 0, 2, "usd")
    assert settings["acct_longest_delay"] == (290, 30, 365, "usd")
    assert settings["acct_huge"] == _REPAIRABLE["acct_huge"][1]
    assert _revision(database_before) == _AFTER


def test_remit_migrate_reports_the_stop_in_one_line_and_exits_refused(
    database_before: str, pg_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """An operator running the upgrade reads what to decide, not a traceback; a script reads 2
    (refused: run unchanged, it stops the same way), not 3 (a bug) or 75 (retry later)."""
    _insert(database_before, _UNDECIDED)
    with (
        scratch_database(pg_cluster, "settings_stop_vault") as vault_url,
        scratch_database(pg_cluster, "settings_stop_acquirer") as acquirer_url,
    ):
        ran = asyncio.run(
            remit(
                "migrate",
                tmp_path=tmp_path,
                DATABASE_URL=database_before,
                VAULT_DATABASE_URL=vault_url,
                ACQUIRER_DATABASE_URL=acquirer_url,
            )
        )
    assert ran.returncode == 2, ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.failure_line().startswith(
        "remit migrate: Cannot bring these accounts' settings within bounds"
    )
    assert "acct_long_delay" in ran.failure_line()
    assert _revision(database_before) == _BEFORE
