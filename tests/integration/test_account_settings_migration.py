"""Core migration 0059 brings accounts stored with settings out of bounds within them, logging
each one it changes, and leaves the others as they were."""

import logging
from collections.abc import Iterator

import psycopg
import pytest

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0058_previous_attributes_by_key"
_AFTER = "0059_account_settings_in_bounds"

# id: (fee_percent_bps, fee_fixed_minor, available_delay_days, default_currency), as stored
# before and as the migration leaves them.
_STORED = {
    "acct_negative_fee": (-1000, 30, 2, "usd"),
    "acct_negative_fixed": (290, -5, 2, "usd"),
    "acct_huge": (20_000, 10**12, 100_000, "eur"),
    "acct_negative_delay": (290, 30, -3, "usd"),
    "acct_capitals": (290, 30, 2, "GBP"),
    "acct_bogus_currency": (290, 30, 2, ""),
    "acct_fine": (150, 0, 7, "jpy"),
}
_REPAIRED = {
    "acct_negative_fee": (0, 30, 2, "usd"),
    "acct_negative_fixed": (290, 0, 2, "usd"),
    "acct_huge": (10_000, 99_999_999, 365, "eur"),
    "acct_negative_delay": (290, 30, 0, "usd"),
    "acct_capitals": (290, 30, 2, "gbp"),
    "acct_bogus_currency": (290, 30, 2, "usd"),
    "acct_fine": (150, 0, 7, "jpy"),
}


@pytest.fixture
def database_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "account_settings") as url:
        upgrade("core", url, _BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            for account_id, (bps, fixed, days, currency) in _STORED.items():
                db.execute(
                    "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                    "fee_percent_bps, fee_fixed_minor, available_delay_days, "
                    "automatic_payouts, radar_enabled) "
                    "VALUES (%s, now(), %s, false, %s, %s, %s, false, true)",
                    (account_id, currency, bps, fixed, days),
                )
        yield url


def _settings(url: str) -> dict[str, tuple[object, ...]]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT id, fee_percent_bps, fee_fixed_minor, available_delay_days, "
            "default_currency FROM accounts"
        ).fetchall()
    return {str(row[0]): tuple(row[1:]) for row in rows}


def test_settings_out_of_bounds_are_brought_within_them_and_logged(
    database_before: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="remit.storage.migrations"):
        upgrade("core", database_before, _AFTER)
    assert _settings(database_before) == _REPAIRED
    logged = [
        record.getMessage()
        for record in caplog.records
        if record.name == "remit.storage.migrations"
    ]
    assert len(logged) == len(_STORED) - 1
    assert not any("acct_fine" in line for line in logged)
    assert any(
        "acct_negative_fee" in line and "fee_percent_bps -1000 -> 0" in line for line in logged
    )
